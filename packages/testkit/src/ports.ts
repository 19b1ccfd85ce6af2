/** A loopback TCP port nothing listens on right now (the OS picks it; a test binds it next). */
export { freeLoopbackPort as freePort } from "@nbfleet/scripts";
