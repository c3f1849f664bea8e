// The coscribe web editor. This module only puts the page together: each concern lives in its
// own module (session, notes list, note view, history, presence, sharing, search), which get what
// they need from the `ctx` made here; the editor itself (yjs, CodeMirror) and the Markdown
// renderer are loaded on demand.
import { createApi, authRequired } from './api.js'
import { byId, button } from './dom.js'
import { createSession } from './session.js'
import { createNotesList } from './notes-list.js'
import { createNoteView } from './note-view.js'
import { createHistory } from './history.js'
import { createPresence } from './presence.js'
import { createSharing } from './sharing.js'
import { createSearch } from './search.js'
import './style.css'

const ctx = {}

function setStatus (state, text) {
  const el = byId('status')
  el.dataset.state = state
  el.textContent = text
}

function refreshStatus () {
  if (ctx.session.state.refused) return
  const n = ctx.notes.current()
  if (!n || !n.editor) {
    if (!n) setStatus(ctx.list.ok ? 'connected' : 'offline', ctx.list.ok ? 'Online' : 'Server unreachable')
    return
  }
  if (n.terminal) return
  const readOnly = ctx.session.state.canWrite === false
  const editor = n.editor
  if (editor.connected) {
    const saving = n.unsaved && !readOnly ? ' · saving…' : ''
    setStatus('connected', readOnly ? 'Connected · read-only' : `Connected${saving}`)
  } else if (!navigator.onLine || editor.failedReconnects > 3) {
    setStatus('offline', n.unsaved ? 'Offline · not saved to the server yet' : 'Offline')
  } else {
    setStatus('reconnecting', n.unsaved ? 'Reconnecting · not saved yet' : 'Reconnecting…')
  }
}

function showView (which) {
  for (const id of ['welcome', 'problem', 'note', 'sharing']) byId(id).hidden = which !== id
  document.body.classList.toggle('has-note', which !== 'welcome')
}

function showProblem (title, detail, actions = []) {
  byId('problem-title').textContent = title
  byId('problem-detail').textContent = detail
  byId('problem-actions').replaceChildren(...actions.map(([label, fn]) => button(label, fn)))
  showView('problem')
}

// A notice stays until the note is opened again, except one about reaching the server
// (`untilSynced`), which the next sync clears: the version or search notices of a page
// opened at a link must survive its first sync, which may come after them.
function notice (text, { untilSynced = false } = {}) {
  const banner = byId('note-banner')
  banner.textContent = text
  banner.dataset.untilSynced = String(untilSynced)
  banner.hidden = false
}

function alertProblem (what, err) {
  if (err.status === 401 || ctx.session.state.refused) return // the access panel says it all
  const text = err.status === 0 ? `${what}: the server cannot be reached. Try again when it is back.` : `${what}: ${err.message}`
  if (!byId('note').hidden) notice(text, { untilSynced: err.status === 0 })
  else {
    byId('list-error').textContent = text
    byId('list-error').hidden = false
  }
}

const navigate = (hash) => { if (location.hash !== hash) location.hash = hash; else route() }
const backToList = ['Back to the notes', () => navigate('#/')]

function noAccess (id) {
  showProblem('No access to this note',
    `This token does not give access to a note “${id}”: the note is in another workspace (or, for all this token may know, does not exist). Pick a note on the left, ask an admin for a share link of that note's workspace, or use another token.`,
    [backToList, ['Use another token', () => ctx.session.refuse('other')]])
  setStatus('offline', 'No access')
}

function renderAccess () {
  const { state } = ctx.session
  byId('signed-in').hidden = !state.token
  byId('signed-in-text').textContent = state.token ? `Signed in with ${ctx.session.label()}${state.me ? ` (${state.me.role})` : ''}` : ''
  const readOnly = state.canWrite === false
  for (const id of ['new-note', 'rename', 'delete', 'save-version', 'restore', 'restore-yes']) {
    byId(id).disabled = readOnly
    byId(id).title = readOnly ? 'Read-only: this token may not change notes' : ''
  }
  byId('title').readOnly = readOnly
  byId('readonly').hidden = !readOnly
  ctx.notes.editor()?.setEditable(!readOnly)
}

// Stop everything that shows or fetches notes (the access panel replaces it all).
function stopAll () {
  ctx.notes.bump()
  ctx.notes.close()
  ctx.list.stop()
}

// Start over with the current token: forget what the last one could do, reload everything.
function restart () {
  ctx.session.reset()
  stopAll()
  ctx.list.reset()
  byId('list-error').hidden = true
  renderAccess()
  ctx.list.refresh().then(renderAccess)
  route()
}

// Routes: #/ (the list), #/note/ID, #/note/ID/version/VID, #/workspace/ID, #/share.
function route () {
  const token = ctx.session.takeTokenFromHash()
  if (token) return ctx.session.signIn(token)
  if (ctx.session.state.refused) return
  document.body.classList.remove('show-list')
  const hash = location.hash
  let m = hash.match(/^#\/note\/([^/]+)(?:\/version\/(\d+))?$/)
  if (m) {
    const id = decodeURIComponent(m[1])
    const versionId = m[2] ? Number(m[2]) : null
    const open = ctx.notes.current()
    if (!open || open.id !== id || byId('note').hidden) ctx.notes.open(id, { versionId })
    else if (versionId !== null) { ctx.history.open(true); ctx.history.select(versionId) }
    ctx.search.markOpen()
    return
  }
  ctx.notes.bump()
  ctx.notes.close()
  m = hash.match(/^#\/workspace\/([^/]+)$/)
  if (m) {
    const id = decodeURIComponent(m[1])
    ctx.session.whoAmI().then(() => {
      if (ctx.list.setWorkspace(id)) return navigate('#/')
      showProblem('No access to this workspace',
        `This token does not give access to the workspace “${id}”. It shows the notes of its own workspace; for another one, ask an admin for a share link of it.`,
        [['Show my workspace', () => navigate('#/')], ['Use another token', () => ctx.session.refuse('other')]])
      setStatus('offline', 'No access')
    })
    return
  }
  if (hash === '#/share') {
    ctx.session.whoAmI().then((me) => {
      if (location.hash !== '#/share') return
      if (me?.role === 'admin') ctx.sharing.open()
      else showProblem('Sharing is for admins', 'Only an admin token can make or revoke share links. Ask an admin of this workspace for a link.', [backToList])
    })
    return
  }
  showView('welcome')
  ctx.list.render()
  ctx.search.markOpen()
  refreshStatus()
}

// The service worker keeps the page itself for reloads while the server is down (web/public/sw.js).
const SHELL_CACHE = 'coscribe-shell-v1'
const assetUrls = () => ['/', ...performance.getEntriesByType('resource').map((e) => e.name)
  .filter((u) => new URL(u).origin === location.origin && new URL(u).pathname.startsWith('/assets/'))]

function keepPageOffline () {
  if (!('serviceWorker' in navigator)) return
  navigator.serviceWorker.register('/sw.js').catch(() => { /* no offline reloads, nothing else lost */ })
}

// Ask the worker to keep what the page runs on now (the editor's chunks once a note opened).
function cacheAssets () {
  if (!('serviceWorker' in navigator)) return
  navigator.serviceWorker.ready.then((registration) => registration.active?.postMessage({ cache: assetUrls() }))
}

async function offlineReady () {
  if (!('caches' in window)) return false
  const cache = await caches.open(SHELL_CACHE)
  for (const url of assetUrls()) if (!(await cache.match(url))) return false
  return true
}

Object.assign(ctx, {
  setStatus, refreshStatus, showView, showProblem, notice, alertProblem, navigate, backToList,
  noAccess, renderAccess, stopAll, restart,
  openNoteId: () => ctx.notes.current()?.id ?? null,
  editor: () => ctx.notes.editor(),
  waitSaved: () => ctx.notes.waitSaved(),
  noteEvent: (event) => ctx.notes.onNoteEvent(event),
  cacheAssets,
})
ctx.session = createSession(ctx)
ctx.api = createApi({ token: () => ctx.session.state.token, onRefused: ctx.session.onRefused })
ctx.presence = createPresence(ctx)
ctx.list = createNotesList(ctx)
ctx.history = createHistory(ctx)
ctx.notes = createNoteView(ctx)
ctx.sharing = createSharing(ctx)
ctx.search = createSearch(ctx)

window.addEventListener('hashchange', route)
window.addEventListener('online', refreshStatus)
window.addEventListener('offline', refreshStatus)
byId('menu').addEventListener('click', () => document.body.classList.toggle('show-list'))
byId('notes').addEventListener('click', () => document.body.classList.remove('show-list'))

// For the end-to-end tests: the open note's text as the CRDT holds it, and its state.
window.coscribe = {
  text: () => ctx.notes.editor()?.text() ?? null,
  synced: () => !!ctx.notes.current()?.synced,
  saved: () => !!ctx.notes.current() && !ctx.notes.current().unsaved,
  readOnly: () => ctx.session.state.canWrite === false,
  color: () => ctx.presence.shownColor(),
  offlineReady,
  live: () => ctx.list.live,
  polling: () => ctx.list.polling,
  selection: () => ctx.notes.editor()?.selectedText() ?? null,
}

// Start: a token in the address bar wins; without any token, ask /health (open to all)
// whether this server wants one, so the page says so at once instead of failing requests.
async function start () {
  keepPageOffline()
  const token = ctx.session.takeTokenFromHash()
  if (token) ctx.session.store(token)
  renderAccess()
  // Unreachable (null): the list says so, retries, and a 401 then shows the access panel.
  if (!ctx.session.state.token && await authRequired()) return ctx.session.refuse('missing')
  ctx.list.refresh().then(renderAccess)
  route()
}
start()
