// The sidebar: the workspace (admins pick one, editors and viewers see their own), its notes
// (every page of the list, following next_cursor), and the trash with undelete.
//
// The list is live: it follows the workspace's change feed (`GET /api/events?workspace_id=`,
// feed.js) and patches itself as notes are created, renamed, changed, deleted and undeleted;
// refresh() reads the whole list again when the feed (re)starts without resuming, says
// `resync`, or the page changed something itself. Only while the feed cannot be opened does a
// timer refresh the list, every 15 s, and the sidebar says so.
import { allPages } from './api.js'
import { byId, button, el } from './dom.js'
import { followEvents } from './feed.js'
import { applyEvent } from './list-events.js'
import { shortTime } from './words.js'

const WORKSPACE_KEY = 'coscribe.workspace'
const POLL_MS = 15000 // only while the change feed cannot be opened
const RETRY_MS = 3000
const LIST_EVENTS = new Set(['created', 'renamed', 'changed', 'deleted', 'restored'])

export function createNotesList (ctx) {
  const state = {
    workspace: null, // the id of the workspace shown
    workspaces: [], // [{id, slug, name}] this token reaches
    loaded: false, // the workspaces were listed once
    notes: [],
    trash: false, // showing deleted notes
    ok: true,
    timer: null,
    seq: 0,
    soon: null, // a refresh about to happen
    rendering: null, // a render about to happen
    pending: null, // while the list is read: the events that arrived meanwhile
    // The change feed of the workspace shown: { workspace, follower, live, problem }.
    feed: null,
  }

  const isAdmin = () => ctx.session.state.me?.role === 'admin'

  // Which workspaces there are, and which one to show.
  async function loadWorkspaces () {
    const first = !state.loaded
    const me = await ctx.session.whoAmI()
    let list = []
    try {
      list = await allPages(ctx.api, '/workspaces')
      state.loaded = true
    } catch { /* unreachable: carry on with what is known, and ask again next time */ }
    if (!list.some((w) => w.id === 'default') && (!me || me.role === 'admin')) {
      list.unshift({ id: 'default', slug: 'default', name: 'Default' })
    }
    const changed = JSON.stringify(list) !== JSON.stringify(state.workspaces)
    state.workspaces = list
    if (state.workspace !== null && !list.some((w) => w.id === state.workspace)) {
      state.workspaces.push({ id: state.workspace, slug: state.workspace, name: state.workspace })
    }
    const stored = localStorage.getItem(WORKSPACE_KEY)
    if (me && me.role !== 'admin') state.workspace = me.workspace_id
    else if (!state.workspace) state.workspace = (stored && list.some((w) => w.id === stored)) ? stored : (me?.workspace_id || 'default')
    if (changed || first) renderWorkspaces()
  }

  function workspaceName (id) {
    const w = state.workspaces.find((x) => x.id === id)
    return w ? (w.name || w.slug) : id
  }

  function renderWorkspaces () {
    const select = byId('workspace')
    const admin = isAdmin()
    select.hidden = !admin
    byId('workspace-name').hidden = admin
    byId('workspace-name').textContent = workspaceName(state.workspace)
    byId('workspace-label').htmlFor = admin ? 'workspace' : ''
    select.replaceChildren(...state.workspaces.map((w) => {
      const o = document.createElement('option')
      o.value = w.id
      o.textContent = w.name || w.slug
      return o
    }))
    select.value = state.workspace
    byId('open-sharing').hidden = !admin
  }

  /** Show another workspace. False (and nothing changes) when this token cannot reach it. */
  function setWorkspace (id) {
    if (id === state.workspace) return true
    const me = ctx.session.state.me
    if (me && me.role !== 'admin' && id !== me.workspace_id) return false
    state.workspace = id
    ctx.search?.reset() // its results were of the other workspace
    if (isAdmin()) localStorage.setItem(WORKSPACE_KEY, id)
    if (!state.workspaces.some((w) => w.id === id)) state.workspaces.push({ id, slug: id, name: id })
    renderWorkspaces()
    state.notes = []
    render()
    refresh()
    return true
  }

  async function refresh () {
    clearTimeout(state.timer)
    clearTimeout(state.soon)
    if (ctx.session.state.refused) return
    const seq = ++state.seq
    if (state.workspace === null || !state.loaded) await loadWorkspaces()
    else if (isAdmin()) loadWorkspaces() // new workspaces show up in the picker
    if (seq !== state.seq) return
    follow()
    // Events that arrive while the list is read are applied to what is read.
    state.pending = []
    try {
      const query = `/notes?workspace_id=${encodeURIComponent(state.workspace)}${state.trash ? '&deleted=true' : ''}`
      let notes = await allPages(ctx.api, query)
      if (seq !== state.seq || ctx.session.state.refused) return
      const missed = state.pending
      state.pending = null
      for (const event of missed) {
        notes = notes && applyEvent(notes, event, { trash: state.trash })
      }
      if (notes === null) refreshSoon()
      else state.notes = notes
      const recovered = !state.ok
      state.ok = true
      byId('list-error').hidden = true
      render()
      // The server is back: so is its feed, without waiting for the next retry.
      if (recovered) state.feed?.follower.reconnectNow()
    } catch (err) {
      if (seq !== state.seq || ctx.session.state.refused) return
      state.pending = null
      state.ok = false
      byId('list-error').hidden = false
      byId('list-error').textContent = err.status === 0
        ? 'Cannot reach the coscribe server. Is it running? Retrying every few seconds…'
        : err.status === 403
          ? `This token does not give access to the workspace “${workspaceName(state.workspace)}”.`
          : `Could not load the notes: ${err.message}`
    }
    ctx.refreshStatus()
    schedule()
  }

  const refreshSoon = () => {
    clearTimeout(state.soon)
    state.soon = setTimeout(refresh, 100)
  }

  // Polling only when needed: the list could not be read (retry soon), or it is not live.
  function schedule () {
    clearTimeout(state.timer)
    state.timer = null
    renderLive()
    if (ctx.session.state.refused || state.workspace === null) return
    if (!state.ok) state.timer = setTimeout(refresh, RETRY_MS)
    else if (!state.feed?.live) state.timer = setTimeout(refresh, POLL_MS)
  }

  // ------------------------------------------------------------ the change feed

  function follow () {
    const workspace = state.workspace
    if (ctx.session.state.refused || workspace === null || state.feed?.workspace === workspace) return
    state.feed?.follower.close()
    const feed = { workspace, follower: null, live: false, problem: null }
    state.feed = feed
    feed.follower = followEvents({
      url: `/api/events?workspace_id=${encodeURIComponent(workspace)}`,
      token: () => ctx.session.state.token,
      onState: (what, info) => { if (state.feed === feed) onFeedState(feed, what, info) },
      onEvent: (event) => { if (state.feed === feed) onFeedEvent(event) },
    })
  }

  function unfollow () {
    state.feed?.follower.close()
    state.feed = null
  }

  function onFeedState (feed, what, info) {
    if (what === 'open') {
      feed.live = true
      feed.problem = null
      // A new stream starts with the next event: read what happened before it. A resumed one
      // replays what was missed.
      if (!info.resumed) refreshSoon()
    } else if (what === 'retrying' || what === 'unavailable') {
      feed.live = false
      // A stream that ended is reopened at once: only say so when it keeps failing.
      if (what === 'unavailable' || info.failures >= 2) feed.problem = info.reason
    } else if (what === 'refused') {
      // 401 or 403: the list's own request finds out why and says it.
      unfollow()
      refreshSoon()
    }
    schedule()
  }

  function onFeedEvent (message) {
    if (message.type === 'resync') return refreshSoon()
    if (message.type === 'end') { // the token no longer gives access: the REST call says so
      unfollow()
      return refreshSoon()
    }
    if (!LIST_EVENTS.has(message.type)) return
    let event
    try { event = JSON.parse(message.data) } catch { return }
    if (event.workspace_id !== state.workspace) return
    ctx.noteEvent?.(event)
    if (state.pending) {
      state.pending.push(event)
      return
    }
    const next = applyEvent(state.notes, event, { trash: state.trash })
    if (next === null) return refreshSoon()
    if (next === state.notes) return
    state.notes = next
    renderSoon()
  }

  function renderSoon () {
    if (state.rendering) return
    state.rendering = setTimeout(() => { state.rendering = null; render() }, 30)
  }

  function renderLive () {
    const line = byId('live-state')
    const problem = state.ok && state.feed && !state.feed.live ? state.feed.problem : null
    line.hidden = !problem
    line.textContent = problem ? `Live updates are paused (${problem}): the list is refreshed every ${POLL_MS / 1000} s until they are back.` : ''
  }

  function render () {
    const ul = byId('notes')
    ul.replaceChildren()
    const open = ctx.openNoteId()
    for (const n of state.notes) {
      const li = document.createElement('li')
      const title = el('span', 'note-title', n.title || 'Untitled')
      const time = el('span', 'note-time', shortTime(state.trash ? n.deleted_at : n.updated_at))
      if (state.trash) {
        li.className = 'trashed'
        const row = el('span', 'note-link')
        row.dataset.id = n.id
        row.append(title, time)
        const undelete = button('Undelete', () => undeleteNote(n.id), 'undelete')
        undelete.disabled = ctx.session.state.canWrite === false
        li.append(row, undelete)
      } else {
        const a = document.createElement('a')
        a.href = `#/note/${encodeURIComponent(n.id)}`
        a.className = 'note-link' + (open === n.id ? ' active' : '')
        a.dataset.id = n.id
        a.append(title, time)
        li.append(a)
      }
      ul.append(li)
    }
    if (!state.notes.length && !ctx.session.state.refused) {
      ul.append(el('li', 'empty', state.trash ? 'The trash is empty.' : 'No notes yet.'))
    }
    byId('list-count').textContent = state.notes.length > 1 ? `${state.notes.length} ${state.trash ? 'deleted notes' : 'notes'}` : ''
  }

  function showTrash (on) {
    state.trash = on
    for (const [id, selected] of [['show-notes', !on], ['show-trash', on]]) {
      byId(id).classList.toggle('selected', selected)
      byId(id).setAttribute('aria-selected', String(selected))
    }
    state.notes = []
    render()
    refresh()
  }

  async function undeleteNote (id) {
    try {
      await ctx.api('POST', `/notes/${encodeURIComponent(id)}/undelete`)
      showTrash(false)
      ctx.navigate(`#/note/${encodeURIComponent(id)}`)
    } catch (err) { ctx.alertProblem('Could not undelete the note', err) }
  }

  function stop () {
    clearTimeout(state.timer)
    clearTimeout(state.soon)
    unfollow()
    renderLive()
    ctx.search?.reset()
    state.seq++
    state.notes = []
    render()
  }

  function reset () {
    stop()
    state.workspace = null
    state.workspaces = []
    state.loaded = false
  }

  // The network is back: so is the feed, without waiting for its next try.
  window.addEventListener('online', () => state.feed?.follower.reconnectNow())
  byId('workspace').addEventListener('focus', () => { if (isAdmin()) loadWorkspaces() })
  byId('workspace').addEventListener('change', (e) => {
    setWorkspace(e.target.value)
    ctx.navigate('#/')
  })
  byId('show-notes').addEventListener('click', () => showTrash(false))
  byId('show-trash').addEventListener('click', () => showTrash(true))
  byId('new-note').addEventListener('click', async () => {
    try {
      const note = await ctx.api('POST', '/notes', { title: 'Untitled', workspace_id: state.workspace })
      showTrash(false)
      ctx.navigate(`#/note/${encodeURIComponent(note.id)}`)
    } catch (err) {
      if (err.status !== 401) ctx.alertProblem('Could not create a note', err)
    }
  })

  return {
    state,
    refresh,
    render,
    stop,
    reset,
    setWorkspace,
    showTrash,
    workspaceName,
    get ok () { return state.ok },
    /** The list follows the change feed (it is not polled). */
    get live () { return !!state.feed?.live },
    /** A timer will read the list again (the feed is not live, or the list failed). */
    get polling () { return state.timer !== null },
    get workspace () { return state.workspace },
  }
}
