// Access tokens in addresses and pasted text. Pure: no DOM, no storage.

/**
 * Take `token=...` out of a location fragment (without its `#`): alone (`token=T`) or next to a
 * route (`/note/ID&token=T`). Returns null when there is none, else the token (null when
 * empty or malformed) and the fragment without it.
 */
export function splitTokenFromHash (hash) {
  const m = hash.match(/(^|[&?])token=([^&]*)/)
  if (!m) return null
  const before = hash.slice(0, m.index)
  let after = hash.slice(m.index + m[0].length)
  if (!before) after = after.replace(/^&/, '')
  else if (m[1] === '?') after = after.replace(/^&/, '?')
  let token = ''
  try { token = decodeURIComponent(m[2]).trim() } catch { /* malformed: no token */ }
  return { token: token || null, rest: before + after }
}

/** A pasted token, or a whole link holding one; null when it cannot be a token. */
export function tokenFromInput (raw) {
  const text = raw.trim()
  const m = text.match(/[#&?]token=([^&\s]+)/)
  let token = text
  if (m) {
    try { token = decodeURIComponent(m[1]) } catch { token = m[1] }
  }
  return /^\S+$/.test(token) ? token : null
}

/** The token's id (`cs_ID_SECRET`): what `coscribe token list` and `token revoke` show. */
export function tokenId (token) {
  const m = /^cs_([0-9a-f]+)_/.exec(token || '')
  return m ? m[1] : null
}

export function tokenLabel (token) {
  const id = tokenId(token)
  return id ? `token ${id}` : 'a token'
}

/**
 * The websocket subprotocols that carry a token: `bearer.TOKEN` keeps it out of every URL (the
 * server answers with `coscribe`). Only characters a subprotocol may hold are sent.
 */
export function socketProtocols (token) {
  if (!token) return []
  if (!/^[A-Za-z0-9._~-]+$/.test(token)) return null
  return [`bearer.${token}`, 'coscribe']
}
