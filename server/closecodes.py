"""Websocket close codes, one meaning each. 4400-4499 mean "do not retry"."""

NORMAL = 1000  # the peer asked to close
GOING_AWAY = 1001  # the server is shutting down
UNSUPPORTED_DATA = 1003  # a text frame: y-websocket speaks binary only
INVALID_PAYLOAD = 1007  # a frame that does not decode, or an update that does not apply
POLICY = 1008  # refused by a policy (origin, limits)
TOO_BIG = 1009  # a frame over max_frame_bytes
INTERNAL = 1011  # the server failed (e.g. the note could not be loaded)
TRY_AGAIN_LATER = 1013  # the connection could not keep up with its room, or the server is busy
BAD_NOTE_ID = 4400  # the note id is not valid
UNAUTHORIZED = 4401
FORBIDDEN = 4403
NOTE_NOT_FOUND = 4404  # the note does not exist or was deleted

REASONS = {
    GOING_AWAY: "server shutting down",
    UNSUPPORTED_DATA: "binary frames only",
    INVALID_PAYLOAD: "malformed message",
    TOO_BIG: "frame too big",
    INTERNAL: "internal error",
    TRY_AGAIN_LATER: "too slow to keep up",
    POLICY: "refused by policy",
    BAD_NOTE_ID: "invalid note id",
    UNAUTHORIZED: "unauthorized: a valid token is required",
    FORBIDDEN: "forbidden: this token does not give access to this note",
    NOTE_NOT_FOUND: "note not found",
}
