// The coscribe web editor: a notes list, one CodeMirror 6 editor bound to the note's Y.Text
// `content` over the stock y-websocket provider, presence, connection state and history.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
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

// ---------------------------------------------------------------- REST

class HttpError extends Error {
  constructor (status, detail) {
    super(detail || `HTTP ${status}`)
    this.status = status
  }
}

async function api (method, path, body) {
  let response
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
  } catch (err) {
    throw new HttpError(0, 'The coscribe server cannot be reached.')
  }
  if (!response.ok) {
    let detail = ''
    try { detail = (await response.json()).detail || '' } catch (err) { /* not JSON */ }
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
  if (!session) {
    setStatus(listOk ? 'connected' : 'offline', listOk ? 'Online' : 'Server unreachable')
    return
  }
  const { provider } = session
  if (session.terminal) return
  if (provider.wsconnected) setStatus('connected', 'Connected')
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
  try {
    const page = await api('GET', '/notes?limit=200')
    notes = page.items
    listOk = true
    $('list-error').hidden = true
    renderNotes()
  } catch (err) {
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
  if (!notes.length) {
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
    alertProblem('Could not create a note', err)
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

function alertProblem (what, err) {
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
    if (seq !== openSeq) return
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
  $('title').value = meta.title || ''
  startSession(id)
  renderNotes()
}

function startSession (id) {
  const doc = new Y.Doc()
  const ytext = doc.getText('content')
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
  const provider = new WebsocketProvider(wsUrl, id, doc, { maxBackoffTime: 3000 })
  const s = { id, doc, ytext, provider, view: null, synced: false, terminal: false }
  session = s
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
  provider.on('closed', ({ code }) => {
    if (session !== s) return
    s.terminal = true
    if (code === 4404) {
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

function showEditor (s) {
  const undoManager = new Y.UndoManager(s.ytext)
  s.view = new EditorView({
    state: EditorState.create({
      doc: s.ytext.toString(),
      extensions: [
        keymap.of(yUndoManagerKeymap),
        basicSetup,
        EditorView.lineWrapping,
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
window.coscribe = { text: () => session?.ytext.toString() ?? null, synced: () => !!session?.synced }

loadNotes()
route()
