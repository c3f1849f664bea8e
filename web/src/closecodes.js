// Websocket close codes, one meaning each: the same names and numbers as server/closecodes.py
// (tests/e2e/test_web_checks.py checks that they match). 4400-4499 mean "do not retry".
export const NORMAL = 1000 // the peer asked to close
export const GOING_AWAY = 1001 // the server is shutting down
export const UNSUPPORTED_DATA = 1003 // a text frame: y-websocket speaks binary only
export const INVALID_PAYLOAD = 1007 // a frame that does not decode, or an update that does not apply
export const POLICY = 1008 // refused by a policy (origin, limits)
export const TOO_BIG = 1009 // a frame over max_frame_bytes
export const INTERNAL = 1011 // the server failed (e.g. the note could not be loaded)
export const TRY_AGAIN_LATER = 1013 // the connection could not keep up with its room, or the server is busy
export const BAD_NOTE_ID = 4400 // the note id is not valid
export const UNAUTHORIZED = 4401
export const FORBIDDEN = 4403
export const NOTE_NOT_FOUND = 4404 // the note does not exist or was deleted

/** Does a close with this code mean "do not reconnect"? */
export const isFinal = (code) => code >= 4400 && code < 4500
