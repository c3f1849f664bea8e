// The REST API under /api: JSON in and out, the token as `Authorization: Bearer`, problems
// (application/problem+json) as HttpError with the server's detail.

export class HttpError extends Error {
  constructor (status, detail) {
    super(detail || `HTTP ${status}`)
    this.status = status // 0: the server could not be reached
  }
}

/**
 * A function `api(method, path, body?)` bound to the current token. `onAnswer(status, method,
 * token)` hears of every refused call (401, 403), with the token it was made with.
 */
export function createApi ({ token, onRefused = () => {} }) {
  return async function api (method, path, body) {
    const used = token()
    const headers = {}
    if (used) headers.Authorization = `Bearer ${used}`
    let payload
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json'
      payload = JSON.stringify(body)
    }
    let response
    try {
      response = await fetch(`/api${path}`, { method, headers, body: payload })
    } catch {
      throw new HttpError(0, 'The coscribe server cannot be reached.')
    }
    if (!response.ok) {
      let detail = ''
      try { detail = (await response.json()).detail || '' } catch { /* not JSON */ }
      if (response.status === 401 || response.status === 403) onRefused(response.status, method, used, detail)
      throw new HttpError(response.status, detail)
    }
    if (response.status === 204) return null
    const type = response.headers.get('content-type') || ''
    if (type.includes('json')) return response.json()
    return new Uint8Array(await response.arrayBuffer())
  }
}

/** Every item of a paged list, following `next_cursor` (at most `maxPages` pages). */
export async function allPages (api, path, { limit = 200, maxPages = 100 } = {}) {
  const items = []
  let cursor = null
  for (let page = 0; page < maxPages; page++) {
    const sep = path.includes('?') ? '&' : '?'
    const url = `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
    const answer = await api('GET', url)
    items.push(...answer.items)
    cursor = answer.next_cursor
    if (!cursor) break
  }
  return items
}

/** Does this server want a token? /health says, to anyone. null: unreachable. */
export async function authRequired () {
  try {
    return !!(await (await fetch('/health')).json()).auth
  } catch {
    return null
  }
}
