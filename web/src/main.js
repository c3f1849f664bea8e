// The coscribe web editor: a notes list, one CodeMirror 6 editor bound to the note's Y.Text
// `content` over the stock y-websocket provider, presence, connection state and history.
// Access: an access token (from the `#token=` link `coscribe serve` prints, or pasted) kept in
// localStorage, sent as `Authorization: Bearer` to /api and as `?token=` to /ws.
import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { EditorView, basicSetup } from 'codemirror'
import { Compartment, EditorState } from '@codemirror/state'
import { keymap } from '@codemirror/view'
import './style.css'

const $ = (id) => document.getElementById(id)
const COLORS = ['#d9480f', '#2b8a3e', '#1971c2', '#9c36b5', '#c2255c', '#0c8599', '#e8590c', '#5f3dc4']
const NAMES = ['Otter', 'Heron', 'Lynx', 'Marten', 'Ibis', 'Vole', 'Finch', 'Newt']
const RETRY_MS = 3000

// ---------------------------------------------------------------- who am I (localStorage)

function loadUser () {
  let name = localStorage.getItem('coscribe.name')
  let color = localStorage.getItem('coscribe.color')
  if (!name) {
    name = `${NAMES[Math.floor(Math.random() * NAMES.length)]} ${Math.floor(Math.random() * 90 + 10)}`
    localStorage.setItem('coscribe.name', name)
  }
  if (!/^#[0-9a-f]{6}$/i.test(color || '')) {
    color = COLORS[Math.floor(Math.random() * COLORS.length)]
    localStorage.setItem('coscribe.color', color)
  }
  return { name, color }
}

const user = loadUser()
$('user-name').value = user.name
$('user-color').value = user.color

function publishUser () {
  if (session) session.provider.awareness.setLocalStateField('user', awarenessUser())
}
function awarenessUser () {
  return { name: user.name, color: user.color, colorLight: user.color + '33' }
}
$('user-name').addEventListener('input', (e) => {
  user.name = e.target.value.trim() || 'Anonymous'
  localStorage.setItem('coscribe.name', user.name)
  publishUser()
})
$('user-color').addEventListener('input', (e) => {
  user.color = e.target.value
  localStorage.setItem('coscribe.color', user.color)
  publishUser()
})

// ---------------------------------------------------------------- access token

const TOKEN_KEY = 'coscribe.token'
const auth = {
  token: localStorage.getItem(TOKEN_KEY) || null,
  // Set while the page shows the access panel instead of the notes:
  // { reason: 'missing' | 'refused' | 'revoked' | 'signed-out' | 'other' (another token wanted), detail }.
  refused: null,
  // May this token change notes? null: not known yet. GET /api/me tells when the first note
  // opens; any write answering 403 says the same.
  canWrite: null,
}

// `#token=...` (alone, or next to the route: `#/note/ID&token=...`): keep the token, take it
// out of the address bar and the history, keep the rest of the route.
function takeTokenFromHash () {
  const hash = location.hash.replace(/^#/, '')
  const m = hash.match(/(^|[&?])token=([^&]*)/)
  if (!m) return null
  const before = hash.slice(0, m.index)
  let after = hash.slice(m.index + m[0].length)
  if (!before) after = after.replace(/^&/, '')
  else if (m[1] === '?') after = after.replace(/^&/, '?')
  const rest = before + after
  history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''))
  let token = ''
  try { token = decodeURIComponent(m[2]).trim() } catch (err) { /* malformed: ignored */ }
  return token || null
}

// A pasted token, or a whole link holding one.
function tokenFromInput (raw) {
  const text = raw.trim()
  const m = text.match(/[#&?]token=([^&\s]+)/)
  let token = text
  if (m) {
    try { token = decodeURIComponent(m[1]) } catch (err) { token = m[1] }
  }
  return /^\S+$/.test(token) ? token : null
}

// The token's id (`cs_ID_SECRET`) is what `coscribe token list` and `token revoke` show.
function tokenLabel (token) {
  const m = /^cs_([0-9a-f]+)_/.exec(token || '')
  return m ? `token ${m[1]}` : 'a token'
}

function signIn (token) {
  auth.token = token
  localStorage.setItem(TOKEN_KEY, token)
  restart()
}

async function signOut () {
  auth.token = null
  localStorage.removeItem(TOKEN_KEY)
  refuse('signed-out')
  // A server with auth off (loopback only) needs no token: carry on without one.
  if ((await authRequired()) === false && !auth.token) restart()
}

// Does this server want a token? /health says, to anyone. null: unreachable.
async function authRequired () {
  try {
    return !!(await (await fetch('/health')).json()).auth
  } catch (err) {
    return null
  }
}

// Start over with the current token: forget what the last one could do, reload everything.
function restart () {
  auth.refused = null
  auth.canWrite = null
  openSeq++
  closeSession()
  document.body.classList.remove('refused')
  $('access').hidden = true
  $('token-error').hidden = true
  $('list-error').hidden = true
  renderAccessState()
  loadNotes()
  route()
}

// The server does not accept this page's token (or it has none): show that and how to go on,
// never the notes list or an editor.
function refuse (reason, detail = '') {
  if (reason === 'refused' && !auth.token) reason = 'missing'
  const first = !auth.refused
  auth.refused = { reason, detail }
  openSeq++
  closeSession()
  clearTimeout(listTimer)
  notes = []
  renderNotes()
  document.body.classList.add('refused')
  document.body.classList.remove('show-list')
  const texts = {
    missing: ['Access refused: this page has no access token',
      'This coscribe server only shows notes to a browser that holds an access token, and this one has none.'],
    refused: ['Access refused: the token was not accepted',
      'The server refused the access token this browser holds: it is missing, revoked or expired.'],
    revoked: ['Access refused: the token no longer works',
      'The server closed the connection because the access token this browser holds was revoked or has expired. The note is no longer shown.'],
    'signed-out': ['Signed out', 'This browser forgot its access token. Notes are shown again once it has one.'],
    other: ['Use another token', `This browser's ${tokenLabel(auth.token)} does not give access to that note or its workspace. Paste a token that does, or go back to the notes this one reaches.`],
  }
  const [title, text] = texts[reason]
  // "token revoked: send `Authorization: Bearer TOKEN` (...)": the part before the advice.
  detail = (detail || '').split(': send ')[0]
  $('access-title').textContent = title
  $('access-detail').textContent = detail ? `${text} (The server said: ${detail}.)` : text
  $('access-example').textContent = `${location.origin}/#token=cs_…`
  $('access-forget').hidden = !auth.token
  $('access-back').hidden = reason !== 'other'
  $('access').hidden = false
  if (first) $('token-input').value = ''
  setStatus('refused', { 'signed-out': 'Signed out', other: 'No access' }[reason] || 'Access refused')
  renderAccessState()
}

function renderAccessState () {
  $('signed-in').hidden = !auth.token
  $('signed-in-text').textContent = auth.token ? `Signed in with ${tokenLabel(auth.token)}` : ''
  const readOnly = auth.canWrite === false
  for (const id of ['new-note', 'rename', 'delete', 'save-version', 'restore']) {
    $(id).disabled = readOnly
    $(id).title = readOnly ? 'Read-only: this token may not change notes' : ''
  }
  $('title').readOnly = readOnly
  $('readonly').hidden = !readOnly
  if (session?.view) {
    session.view.dispatch({ effects: session.editable.reconfigure(editableExtensions(!readOnly)) })
  }
}

function markReadOnly () {
  if (auth.canWrite === false) return
  auth.canWrite = false
  renderAccessState()
  refreshStatus()
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const token = tokenFromInput($('token-input').value)
  if (!token) {
    $('token-error').textContent = 'That is not a token: paste the text after “#token=”, or the whole link.'
    $('token-error').hidden = false
    return
  }
  $('token-input').value = ''
  signIn(token)
})
$('forget-token').addEventListener('click', signOut)
$('access-back').addEventListener('click', () => {
  history.replaceState(history.state, '', location.pathname + location.search + '#/')
  restart()
})
$('sign-out').addEventListener('click', signOut)
// Signed in or out in another tab of this browser: follow it.
window.addEventListener('storage', (e) => {
  if (e.key !== TOKEN_KEY || (e.newValue || null) === auth.token) return
  auth.token = e.newValue || null
  if (auth.token) restart()
  else refuse('signed-out')
})

// ---------------------------------------------------------------- REST

class HttpError extends Error {
  constructor (status, detail) {
    super(detail || `HTTP ${status}`)
    this.status = status
  }
}

async function api (method, path, body) {
  const token = auth.token
  const headers = {}
  if (token) headers.Authorization = `Bearer ${token}`
  let payload
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    payload = JSON.stringify(body)
  }
  let response
  try {
    response = await fetch(`/api${path}`, { method, headers, body: payload })
  } catch (err) {
    throw new HttpError(0, 'The coscribe server cannot be reached.')
  }
  if (!response.ok) {
    let detail = ''
    try { detail = (await response.json()).detail || '' } catch (err) { /* not JSON */ }
    // Only about the token in use now: an answer to a request made with an older one is moot.
    if (token === auth.token) {
      if (response.status === 401) refuse('refused', detail)
      // Every note the page writes to, it could read: a 403 on a write is the role's.
      else if (response.status === 403 && method !== 'GET') markReadOnly()
    }
    throw new HttpError(response.status, detail)
  }
  return response.status === 204 ? null : response.json()
}

// ---------------------------------------------------------------- connection state

function setStatus (state, text) {
  const el = $('status')
  el.dataset.state = state
  el.textContent = text
}

function refreshStatus () {
  if (auth.refused) return
  if (!session) {
    setStatus(listOk ? 'connected' : 'offline', listOk ? 'Online' : 'Server unreachable')
    return
  }
  const { provider } = session
  if (session.terminal) return
  if (provider.wsconnected) setStatus('connected', auth.canWrite === false ? 'Connected · read-only' : 'Connected')
  else if (!navigator.onLine || provider.wsUnsuccessfulReconnects > 3) {
    setStatus('offline', session.synced ? 'Offline — your edits are kept and will merge' : 'Offline')
  } else setStatus('reconnecting', 'Reconnecting…')
}
window.addEventListener('online', refreshStatus)
window.addEventListener('offline', refreshStatus)

// ---------------------------------------------------------------- notes list

let listOk = true
let notes = []
let listTimer = null

function fmtTime (iso) {
  if (!iso) return ''
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return iso
  const same = d.toDateString() === new Date().toDateString()
  return same ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString()
}

async function loadNotes () {
  clearTimeout(listTimer)
  if (auth.refused) return
  try {
    const page = await api('GET', '/notes?limit=200')
    if (auth.refused) return
    notes = page.items
    listOk = true
    $('list-error').hidden = true
    renderNotes()
  } catch (err) {
    if (auth.refused) return
    listOk = false
    $('list-error').hidden = false
    $('list-error').textContent = err.status === 0
      ? 'Cannot reach the coscribe server. Is it running? Retrying every few seconds…'
      : `Could not load the notes: ${err.message}`
  }
  refreshStatus()
  listTimer = setTimeout(loadNotes, listOk ? 15000 : RETRY_MS)
}

function renderNotes () {
  const ul = $('notes')
  ul.replaceChildren()
  for (const n of notes) {
    const li = document.createElement('li')
    const a = document.createElement('a')
    a.href = `#/note/${encodeURIComponent(n.id)}`
    a.className = 'note-link' + (session && session.id === n.id ? ' active' : '')
    a.dataset.id = n.id
    const t = document.createElement('span')
    t.className = 'note-title'
    t.textContent = n.title || 'Untitled'
    const m = document.createElement('span')
    m.className = 'note-time'
    m.textContent = fmtTime(n.updated_at)
    a.append(t, m)
    li.append(a)
    ul.append(li)
  }
  if (!notes.length && !auth.refused) {
    const li = document.createElement('li')
    li.className = 'empty'
    li.textContent = 'No notes yet.'
    ul.append(li)
  }
}

$('new-note').addEventListener('click', async () => {
  try {
    const note = await api('POST', '/notes', { title: 'Untitled' })
    await loadNotes()
    location.hash = `#/note/${encodeURIComponent(note.id)}`
  } catch (err) {
    if (err.status !== 401) alertProblem('Could not create a note', err)
  }
})

// ---------------------------------------------------------------- problems

function showView (which) {
  $('welcome').hidden = which !== 'welcome'
  $('problem').hidden = which !== 'problem'
  $('note').hidden = which !== 'note'
  document.body.classList.toggle('has-note', which !== 'welcome')
}

function showProblem (title, detail, actions = []) {
  $('problem-title').textContent = title
  $('problem-detail').textContent = detail
  const p = $('problem-actions')
  p.replaceChildren()
  for (const [label, fn] of actions) {
    const b = document.createElement('button')
    b.textContent = label
    b.addEventListener('click', fn)
    p.append(b)
  }
  showView('problem')
}

const backToList = ['Back to the notes', () => { location.hash = '#/' }]

const useAnotherToken = ['Use another token', () => refuse('other')]

function noAccess (id) {
  showProblem('No access to this note',
    `This token does not give access to a note “${id}”: the note is in another workspace (or, for all this token may know, does not exist). Pick a note on the left, ask an admin for a token of that note's workspace (coscribe token create --workspace WORKSPACE --role editor), or use another token.`,
    [backToList, useAnotherToken])
  setStatus('offline', 'No access')
}

function alertProblem (what, err) {
  if (err.status === 401 || auth.refused) return // the access panel says it all
  const banner = $('note-banner')
  const text = err.status === 0 ? `${what}: the server cannot be reached. Try again when it is back.` : `${what}: ${err.message}`
  if (!$('note').hidden) {
    banner.textContent = text
    banner.hidden = false
  } else {
    $('list-error').textContent = text
    $('list-error').hidden = false
  }
}

// ---------------------------------------------------------------- one open note

let session = null
let openSeq = 0

function closeSession () {
  if (!session) return
  clearTimeout(session.retry)
  session.view?.destroy()
  session.provider?.destroy()
  session.doc?.destroy()
  session = null
  $('editor').replaceChildren()
  $('presence').replaceChildren()
}

async function openNote (id) {
  const seq = ++openSeq
  closeSession()
  showView('note')
  $('loading').hidden = false
  $('loading').textContent = 'Loading the note…'
  $('editor').hidden = true
  $('note-banner').hidden = true
  $('history').hidden = true
  $('title').value = ''
  let meta
  try {
    meta = await api('GET', `/notes/${encodeURIComponent(id)}`)
  } catch (err) {
    if (seq !== openSeq || err.status === 401) return
    if (err.status === 403) return noAccess(id)
    if (err.status === 404) {
      showProblem('This note does not exist', `There is no note “${id}”, or it was deleted. Pick another note on the left, or create a new one.`, [backToList])
    } else if (err.status === 0) {
      showProblem('The coscribe server cannot be reached', 'The note cannot be opened while the server is down. Start it again (scripts/serve); this page retries by itself every few seconds.', [['Retry now', () => openNote(id)], backToList])
      setTimeout(() => { if (seq === openSeq && !session) openNote(id) }, RETRY_MS)
    } else {
      showProblem('The note cannot be opened', err.message, [['Retry', () => openNote(id)], backToList])
    }
    setStatus('offline', err.status === 0 ? 'Server unreachable' : 'Error')
    return
  }
  if (seq !== openSeq) return
  if (auth.canWrite === null) {
    await probeWrite()
    if (seq !== openSeq) return
  }
  $('title').value = meta.title || ''
  startSession(id)
  renderNotes()
  renderAccessState()
}

// May this token change notes? /api/me tells (a viewer's role), without touching any note.
async function probeWrite () {
  const token = auth.token
  try {
    const me = await api('GET', '/me')
    if (token === auth.token) auth.canWrite = me.can_write
  } catch (err) { /* still unknown: asked again next time */ }
}

function socketOptions () {
  return { maxBackoffTime: 3000, params: auth.token ? { token: auth.token } : {} }
}

function startSession (id) {
  const doc = new Y.Doc()
  const ytext = doc.getText('content')
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
  const provider = new WebsocketProvider(wsUrl, id, doc, socketOptions())
  const s = { id, doc, ytext, provider, view: null, synced: false, terminal: false, denied: '', editable: new Compartment() }
  session = s
  // The server says why before it closes a refused socket (then 4401 or 4403): keep the reason
  // for the page instead of y-websocket's console warning.
  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    authProtocol.readAuthMessage(decoder, doc, (_doc, reason) => { s.denied = reason })
  }
  provider.awareness.setLocalStateField('user', awarenessUser())

  provider.on('status', () => { if (session === s) refreshStatus() })
  provider.on('connection-close', () => { if (session === s) refreshStatus() })
  provider.on('sync', (isSynced) => {
    if (session !== s || !isSynced) return
    if (!s.synced) {
      s.synced = true
      showEditor(s)
    }
    $('note-banner').hidden = true
    refreshStatus()
  })
  provider.on('closed', ({ code, reason }) => {
    if (session !== s) return
    s.terminal = true
    if (code === 4401) {
      refuse(auth.token ? 'revoked' : 'missing', reason || s.denied)
    } else if (code === 4403) {
      closeSession()
      noAccess(id)
    } else if (code === 4404) {
      setStatus('offline', 'Note deleted')
      showProblem('This note was deleted', 'Someone deleted this note, so it can no longer be edited. You can bring it back, or go back to the notes.', [
        ['Undelete it', async () => {
          try { await api('POST', `/notes/${encodeURIComponent(id)}/undelete`); openNote(id) } catch (err) { alertProblem('Could not undelete', err) }
        }],
        backToList,
      ])
      closeSession()
      loadNotes()
    } else {
      setStatus('offline', `Closed (${code})`)
      showProblem('The note cannot be opened', code === 4400 ? `“${id}” is not a valid note id (letters, digits, _ and - only).` : `The server closed the connection (code ${code}).`, [backToList])
      closeSession()
    }
  })
  provider.awareness.on('change', () => { if (session === s) renderPresence(s) })
  renderPresence(s)
  // Not yet synced after a while: say why instead of showing an empty editor.
  s.retry = setTimeout(() => {
    if (session === s && !s.synced) $('loading').textContent = 'Still connecting to the server… the note appears as soon as it is loaded.'
  }, 4000)
  refreshStatus()
}

function editableExtensions (editable) {
  return editable ? [] : [EditorState.readOnly.of(true), EditorView.editable.of(false)]
}

function showEditor (s) {
  const undoManager = new Y.UndoManager(s.ytext)
  s.view = new EditorView({
    state: EditorState.create({
      doc: s.ytext.toString(),
      extensions: [
        keymap.of(yUndoManagerKeymap),
        basicSetup,
        EditorView.lineWrapping,
        s.editable.of(editableExtensions(auth.canWrite !== false)),
        yCollab(s.ytext, s.provider.awareness, { undoManager }),
      ],
    }),
    parent: $('editor'),
  })
  $('loading').hidden = true
  $('editor').hidden = false
}

function renderPresence (s) {
  const ul = $('presence')
  ul.replaceChildren()
  const states = [...s.provider.awareness.getStates().entries()].sort(([a], [b]) => (a === s.doc.clientID ? -1 : b === s.doc.clientID ? 1 : a - b))
  for (const [clientId, state] of states) {
    if (!state.user) continue
    const li = document.createElement('li')
    li.dataset.clientId = String(clientId)
    const dot = document.createElement('span')
    dot.className = 'dot'
    dot.style.background = state.user.color || '#888'
    const name = document.createElement('span')
    name.className = 'presence-name'
    name.textContent = state.user.name || 'Anonymous'
    li.append(dot, name)
    if (clientId === s.doc.clientID) {
      const me = document.createElement('span')
      me.className = 'you'
      me.textContent = ' (you)'
      li.append(me)
    }
    ul.append(li)
  }
}

// ---------------------------------------------------------------- rename, delete

async function rename () {
  if (!session) return
  const title = $('title').value.trim() || 'Untitled'
  try {
    await api('PATCH', `/notes/${encodeURIComponent(session.id)}`, { title })
    loadNotes()
  } catch (err) { alertProblem('Could not rename', err) }
}
$('rename').addEventListener('click', rename)
$('title').addEventListener('keydown', (e) => { if (e.key === 'Enter') rename() })

$('delete').addEventListener('click', async () => {
  if (!session) return
  const id = session.id
  if (!confirm(`Delete “${$('title').value || 'Untitled'}”? Everyone editing it is disconnected.`)) return
  try {
    await api('DELETE', `/notes/${encodeURIComponent(id)}`)
    closeSession()
    await loadNotes()
    location.hash = '#/'
  } catch (err) { alertProblem('Could not delete', err) }
})

// ---------------------------------------------------------------- history

let selectedVersion = null

$('toggle-history').addEventListener('click', () => {
  const h = $('history')
  h.hidden = !h.hidden
  if (!h.hidden) loadVersions()
})

async function loadVersions () {
  if (!session) return
  const id = session.id
  const ul = $('versions')
  $('version-view').hidden = true
  selectedVersion = null
  try {
    const page = await api('GET', `/notes/${encodeURIComponent(id)}/versions?limit=100`)
    if (!session || session.id !== id) return
    ul.replaceChildren()
    for (const v of page.items) {
      const li = document.createElement('li')
      const b = document.createElement('button')
      b.className = 'version'
      b.dataset.versionId = String(v.id)
      b.textContent = `${new Date(v.created_at).toLocaleString()} · ${v.label || v.kind}`
      b.addEventListener('click', () => showVersion(v, b))
      li.append(b)
      ul.append(li)
    }
    if (!page.items.length) {
      const li = document.createElement('li')
      li.className = 'empty'
      li.textContent = 'No versions yet.'
      ul.append(li)
    }
  } catch (err) { alertProblem('Could not load the history', err) }
}

async function showVersion (v, button) {
  if (!session) return
  try {
    const data = await api('GET', `/notes/${encodeURIComponent(session.id)}/versions/${v.id}`)
    selectedVersion = v
    for (const el of document.querySelectorAll('.version.selected')) el.classList.remove('selected')
    button.classList.add('selected')
    $('version-label').textContent = `${new Date(v.created_at).toLocaleString()} · ${v.label || v.kind}`
    $('version-text').textContent = data.text
    $('version-view').hidden = false
  } catch (err) { alertProblem('Could not load that version', err) }
}

$('save-version').addEventListener('click', async () => {
  if (!session) return
  try {
    await api('POST', `/notes/${encodeURIComponent(session.id)}/versions`, { label: `saved by ${user.name}` })
    loadVersions()
  } catch (err) { alertProblem('Could not save a version', err) }
})

$('restore').addEventListener('click', async () => {
  if (!session || !selectedVersion) return
  try {
    await api('POST', `/notes/${encodeURIComponent(session.id)}/versions/${selectedVersion.id}/restore`)
    loadVersions()
  } catch (err) { alertProblem('Could not restore', err) }
})

// ---------------------------------------------------------------- routing (#/note/{id})

$('menu').addEventListener('click', () => document.body.classList.toggle('show-list'))
$('notes').addEventListener('click', () => document.body.classList.remove('show-list'))

function route () {
  const token = takeTokenFromHash()
  if (token) return signIn(token)
  if (auth.refused) return
  const m = location.hash.match(/^#\/note\/(.+)$/)
  if (m) {
    const id = decodeURIComponent(m[1])
    if (!session || session.id !== id) openNote(id)
  } else {
    openSeq++
    closeSession()
    showView('welcome')
    renderNotes()
    refreshStatus()
  }
}
window.addEventListener('hashchange', route)

// For the end-to-end tests: the open note's text as the CRDT holds it.
window.coscribe = {
  text: () => session?.ytext.toString() ?? null,
  synced: () => !!session?.synced,
  readOnly: () => auth.canWrite === false,
}

// Start: a token in the address bar wins; without any token, ask /health (open to all)
// whether this server wants one, so the page says so at once instead of failing requests.
async function start () {
  const token = takeTokenFromHash()
  if (token) {
    auth.token = token
    localStorage.setItem(TOKEN_KEY, token)
  }
  renderAccessState()
  // Unreachable (null): the list says so, retries, and a 401 then shows the access panel.
  if (!auth.token && await authRequired()) return refuse('missing')
  loadNotes()
  route()
}
start()
