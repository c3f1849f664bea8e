// The History panel: versions a page at a time, in plain words with who saved them; a version
// shown as its differences from the current text; restore after a confirmation, done in the
// page as one change of its own (so Ctrl+Z takes it back), once the text from before is saved
// as a version on the server.
import { diffSummary, lineDiff } from './diff.js'
import { byId, button, el } from './dom.js'
import { longTime, names, versionWhat } from './words.js'

const PAGE = 20
const LABEL_CHARS = 200

export function createHistory (ctx) {
  const state = { noteId: null, cursor: null, selected: null, text: null, seq: 0 }
  const path = (rest = '') => `/notes/${encodeURIComponent(state.noteId)}/versions${rest}`

  function reset (noteId) {
    state.noteId = noteId
    state.cursor = null
    state.selected = null
    state.text = null
    state.seq++
    byId('versions').replaceChildren()
    byId('version-view').hidden = true
    byId('versions-more').hidden = true
    byId('restore-confirm').hidden = true
  }

  function open (on = true) {
    byId('history').hidden = !on
    byId('toggle-history').setAttribute('aria-pressed', String(on))
    if (on) load(true)
  }

  async function load (fresh) {
    if (!state.noteId) return
    const seq = fresh ? ++state.seq : state.seq
    if (fresh) { state.cursor = null; byId('versions').replaceChildren() }
    try {
      const page = await ctx.api('GET', path(`?limit=${PAGE}${state.cursor ? `&cursor=${encodeURIComponent(state.cursor)}` : ''}`))
      if (seq !== state.seq) return
      const ul = byId('versions')
      for (const v of page.items) {
        const li = document.createElement('li')
        const b = button('', () => select(v.id), 'version')
        b.dataset.versionId = String(v.id)
        b.append(el('span', 'version-what', versionWhat(v)), el('span', 'version-when', longTime(v.created_at)))
        if (state.selected?.id === v.id) b.classList.add('selected')
        li.append(b)
        ul.append(li)
      }
      if (!ul.children.length) ul.append(el('li', 'empty', 'No versions yet. “Save a version” keeps the text as it is now.'))
      state.cursor = page.next_cursor
      byId('versions-more').hidden = !state.cursor
    } catch (err) { ctx.alertProblem('Could not load the history', err) }
  }

  async function select (versionId) {
    const noteId = state.noteId
    byId('restore-confirm').hidden = true
    try {
      const v = await ctx.api('GET', path(`/${versionId}`))
      if (noteId !== state.noteId) return
      state.selected = v
      state.text = v.text
      for (const b of document.querySelectorAll('.version')) b.classList.toggle('selected', b.dataset.versionId === String(v.id))
      byId('version-label').textContent = versionWhat(v)
      byId('version-when').textContent = longTime(v.created_at)
      byId('version-text').textContent = v.text
      showDiff()
      byId('version-view').hidden = false
    } catch (err) {
      if (err.status === 404) {
        state.selected = null
        byId('version-view').hidden = true
        ctx.notice(`That version (${versionId}) no longer exists: old versions are removed after a while. Pick another one from the list.`)
        load(true)
      } else ctx.alertProblem('Could not load that version', err)
    }
  }

  // The version against the current text: what restoring it would take out and bring back.
  function showDiff () {
    if (state.text === null) return
    const current = ctx.editor()?.text() ?? ''
    const ops = lineDiff(current, state.text)
    const box = byId('version-diff')
    box.replaceChildren()
    const summary = diffSummary(ops)
    byId('version-summary').textContent = summary === 'No difference'
      ? 'Same text as now.'
      : `Compared with the current text: ${summary.replace('added', 'only in this version').replace('removed', 'only in the current text')}.`
    for (const { op, lines } of ops) {
      if (op === 'same' && lines.length > 6) {
        for (const line of lines.slice(0, 2)) box.append(el('div', 'diff-same', line || ' '))
        box.append(el('div', 'diff-skip', `… ${lines.length - 4} unchanged lines …`))
        for (const line of lines.slice(-2)) box.append(el('div', 'diff-same', line || ' '))
        continue
      }
      for (const line of lines) {
        const row = el('div', `diff-${op}`, line || ' ')
        if (op !== 'same') row.title = op === 'add' ? 'Only in this version' : 'Only in the current text'
        box.append(row)
      }
    }
  }

  async function save () {
    if (!state.noteId) return
    const [me, ...others] = ctx.presence.names()
    const label = (others.length ? `Saved by ${me}, with ${names(others)} in the note` : `Saved by ${me}`).slice(0, LABEL_CHARS)
    try {
      await ctx.waitSaved()
      await ctx.api('POST', path(), { label })
      load(true)
    } catch (err) { ctx.alertProblem('Could not save a version', err) }
  }

  async function restore () {
    const v = state.selected
    const editor = ctx.editor()
    if (!v || !editor) return
    byId('restore-confirm').hidden = true
    const label = `Before ${ctx.presence.user.name} restored the version of ${longTime(v.created_at)}`.slice(0, LABEL_CHARS)
    try {
      // The text from before is kept on the server first: no version, no restore.
      await ctx.waitSaved()
      await ctx.api('POST', path(), { label })
    } catch (err) {
      ctx.alertProblem('Not restored: the current text could not be saved as a version first', err)
      return
    }
    if (ctx.editor() !== editor) return
    editor.restore(state.text)
    load(true)
  }

  byId('toggle-history').addEventListener('click', () => open(byId('history').hidden))
  byId('versions-more').addEventListener('click', () => load(false))
  byId('save-version').addEventListener('click', save)
  byId('restore').addEventListener('click', () => { byId('restore-confirm').hidden = false; byId('restore-yes').focus() })
  byId('restore-no').addEventListener('click', () => { byId('restore-confirm').hidden = true })
  byId('restore-yes').addEventListener('click', restore)

  return { reset, open, select, showDiff, get visible () { return !byId('history').hidden } }
}
