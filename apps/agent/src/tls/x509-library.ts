/** @peculiar/x509, loaded and set up once (packages/acme owns it). */
export { x509 } from "@nbfleet/acme/x509";
