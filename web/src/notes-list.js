// The sidebar: the workspace (admins pick one, editors and viewers see their own), its notes
// (every page of the list, following next_cursor), and the trash with undelete.
//
// refresh() is the one way the list is brought up to date: today a timer calls it; a push
// feed of note events can call it (or patch the list) the same way.
import { allPages } from './api.js'
import { byId, button, el } from './dom.js'
import { shortTime } from './words.js'

const WORKSPACE_KEY = 'coscribe.workspace'
const REFRESH_MS = 15000
const RETRY_MS = 3000

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
    if (ctx.session.state.refused) return
    const seq = ++state.seq
    if (state.workspace === null || !state.loaded) await loadWorkspaces()
    else if (isAdmin()) loadWorkspaces() // new workspaces show up in the picker
    if (seq !== state.seq) return
    try {
      const query = `/notes?workspace_id=${encodeURIComponent(state.workspace)}${state.trash ? '&deleted=true' : ''}`
      const notes = await allPages(ctx.api, query)
      if (seq !== state.seq || ctx.session.state.refused) return
      state.notes = notes
      state.ok = true
      byId('list-error').hidden = true
      render()
    } catch (err) {
      if (seq !== state.seq || ctx.session.state.refused) return
      state.ok = false
      byId('list-error').hidden = false
      byId('list-error').textContent = err.status === 0
        ? 'Cannot reach the coscribe server. Is it running? Retrying every few seconds…'
        : err.status === 403
          ? `This token does not give access to the workspace “${workspaceName(state.workspace)}”.`
          : `Could not load the notes: ${err.message}`
    }
    ctx.refreshStatus()
    state.timer = setTimeout(refresh, state.ok ? REFRESH_MS : RETRY_MS)
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
    workspaceName,
    get ok () { return state.ok },
    get workspace () { return state.workspace },
  }
}
