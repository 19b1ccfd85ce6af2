/**
 * What the controller holds for one reader of a stream it serves (a terminal client, a log
 * follower): beyond this many bytes unsent the reader is cut off, whether or not the agent
 * upstream slows down when asked, so a reader that stops reading cannot fill the controller.
 */
export const MAX_UNSENT_BYTES = 8 * 1024 * 1024;
