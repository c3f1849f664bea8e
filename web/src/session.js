// Who this page is: the access token (kept in localStorage, taken from `#token=` links and
// pasted text), what the server says it may do (/api/me), and the "Access refused" panel.
import { splitTokenFromHash, tokenFromInput, tokenLabel } from './token.js'
import { authRequired } from './api.js'
import { byId } from './dom.js'

const TOKEN_KEY = 'coscribe.token'

const TEXTS = {
  missing: ['Access refused: this page has no access token',
    'This coscribe server only shows notes to a browser that holds an access token, and this one has none.'],
  refused: ['Access refused: the token was not accepted',
    'The server refused the access token this browser holds: it is missing, revoked or expired. If it came from a share link, the link may have been revoked: ask for a new one.'],
  revoked: ['Access refused: the token no longer works',
    'The server no longer accepts the access token this browser holds: it was revoked or has expired. The notes are no longer shown.'],
  'signed-out': ['Signed out', 'This browser forgot its access token. Notes are shown again once it has one.'],
  other: ['Use another token', 'This browser\'s TOKEN does not give access to that note or its workspace. Paste a token that does, or go back to the notes this one reaches.'],
}

/** The session: state plus what changes it. `ctx.restart()` and `ctx.stopAll()` come from the app. */
export function createSession (ctx) {
  const state = {
    token: localStorage.getItem(TOKEN_KEY) || null,
    // While the page shows the access panel: { reason, detail }.
    refused: null,
    // What the token may do, from /api/me: { role, workspace_id, can_write } (null: not known).
    me: null,
    // May this token change notes? null: not known yet. A write answering 403 says no.
    canWrite: null,
  }

  // `#token=...` in the address: keep the token, take it out of the address and the history.
  function takeTokenFromHash () {
    const found = splitTokenFromHash(location.hash.replace(/^#/, ''))
    if (!found) return null
    history.replaceState(history.state, '', location.pathname + location.search + (found.rest ? `#${found.rest}` : ''))
    return found.token
  }

  function store (token) {
    state.token = token
    if (token) localStorage.setItem(TOKEN_KEY, token)
    else localStorage.removeItem(TOKEN_KEY)
  }

  function signIn (token) {
    store(token)
    ctx.restart()
  }

  // The notes this browser keeps for offline work (editor.js) go with the token.
  async function forgetOfflineCopies () {
    localStorage.removeItem('coscribe.titles')
    if (!indexedDB.databases) return
    try {
      const names = (await indexedDB.databases()).map((d) => d.name).filter((n) => n?.startsWith('coscribe-note-'))
      await Promise.all(names.map((name) => new Promise((resolve) => {
        const request = indexedDB.deleteDatabase(name)
        request.onsuccess = request.onerror = request.onblocked = () => resolve()
      })))
    } catch { /* nothing listed: nothing to delete */ }
  }

  async function signOut () {
    store(null)
    refuse('signed-out')
    await forgetOfflineCopies()
    // A server with auth off (loopback only) needs no token: carry on without one.
    if ((await authRequired()) === false && !state.token) ctx.restart()
  }

  function reset () {
    state.refused = null
    state.me = null
    state.canWrite = null
    document.body.classList.remove('refused')
    byId('access').hidden = true
    byId('token-error').hidden = true
  }

  // The server does not accept this page's token (or it has none): say so and how to go on,
  // never the notes list or an editor.
  function refuse (reason, detail = '') {
    if (reason === 'refused' && !state.token) reason = 'missing'
    const first = !state.refused
    state.refused = { reason, detail }
    ctx.stopAll()
    document.body.classList.add('refused')
    document.body.classList.remove('show-list')
    const [title, text] = TEXTS[reason]
    // "token revoked: send `Authorization: Bearer TOKEN` (...)": the part before the advice.
    const said = (detail || '').split(': send ')[0]
    const body = text.replace('TOKEN', tokenLabel(state.token))
    byId('access-title').textContent = title
    byId('access-detail').textContent = said ? `${body} (The server said: ${said}.)` : body
    byId('access-example').textContent = `${location.origin}/#token=cs_…`
    byId('access-forget').hidden = !state.token
    byId('access-back').hidden = reason !== 'other'
    byId('access').hidden = false
    if (first) byId('token-input').value = ''
    ctx.setStatus('refused', { 'signed-out': 'Signed out', other: 'No access' }[reason] || 'Access refused')
    ctx.renderAccess()
  }

  // What the token may do: asked once per token; null when the server cannot be reached.
  async function whoAmI () {
    if (state.me) return state.me
    const token = state.token
    try {
      const me = await ctx.api('GET', '/me')
      if (token === state.token) {
        state.me = me
        if (state.canWrite === null) state.canWrite = me.can_write
      }
      return me
    } catch {
      return null
    }
  }

  // Every refused API call comes here, with the token it was made with.
  function onRefused (status, method, token, detail) {
    if (token !== state.token) return // an answer about an older token is moot
    // A token that worked before (it told who it is) and is refused now was revoked or expired.
    if (status === 401) refuse(state.me ? 'revoked' : 'refused', detail)
    // Every note the page writes to, it could read: a 403 on a write is the role's.
    else if (status === 403 && method !== 'GET' && state.canWrite !== false) {
      state.canWrite = false
      ctx.renderAccess()
      ctx.refreshStatus()
    }
  }

  byId('token-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const token = tokenFromInput(byId('token-input').value)
    if (!token) {
      byId('token-error').textContent = 'That is not a token: paste the text after “#token=”, or the whole link.'
      byId('token-error').hidden = false
      return
    }
    byId('token-input').value = ''
    signIn(token)
  })
  byId('forget-token').addEventListener('click', signOut)
  byId('sign-out').addEventListener('click', signOut)
  byId('access-back').addEventListener('click', () => {
    history.replaceState(history.state, '', location.pathname + location.search + '#/')
    ctx.restart()
  })
  // Signed in or out in another tab of this browser: follow it.
  window.addEventListener('storage', (e) => {
    if (e.key !== TOKEN_KEY || (e.newValue || null) === state.token) return
    state.token = e.newValue || null
    if (state.token) ctx.restart()
    else refuse('signed-out')
  })

  return { state, takeTokenFromHash, store, signIn, signOut, reset, refuse, whoAmI, onRefused, label: () => tokenLabel(state.token) }
}
