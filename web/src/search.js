// Search: the box above the notes list searches the titles and bodies of the workspace shown
// (`GET /api/search?q=&workspace_id=`), as one types (or on Enter). Results replace the list
// until the search is closed, each with its title and a snippet, the matched words marked
// (DOM built from `snippet` and `highlights`, never HTML). Opening one opens the note with the
// first match selected. A hit whose note is gone, or a query the server refuses, says so.
import { byId, button, el } from './dom.js'
import { markedParts } from './highlight.js'

const PAGE = 20
const TYPING_MS = 300

/** Text and <mark> elements in `parent`, from `text` and its highlights. */
function appendMarked (parent, text, highlights) {
  for (const part of markedParts(text, highlights)) {
    parent.append(part.mark ? el('mark', '', part.text) : document.createTextNode(part.text))
  }
}

export function createSearch (ctx) {
  const state = { query: '', items: [], cursor: null, seq: 0, timer: null, shown: false }
  const input = byId('search-input')

  function show (on) {
    state.shown = on
    byId('search').hidden = !on
    byId('sidebar').classList.toggle('searching', on)
  }

  /** Close the search and show the notes list again. */
  function reset () {
    clearTimeout(state.timer)
    state.seq++
    state.query = ''
    state.items = []
    state.cursor = null
    input.value = ''
    byId('search-results').replaceChildren()
    byId('search-error').hidden = true
    show(false)
  }

  function problem (err) {
    const box = byId('search-error')
    box.hidden = false
    if (err.status === 0) box.textContent = 'The server cannot be reached: search again when it is back.'
    else if (err.status === 401) box.hidden = true // the access panel says it all
    else box.textContent = `The search was refused: ${(err.message || '').replace(/^q: /, '')}`
  }

  async function run ({ more = false } = {}) {
    clearTimeout(state.timer)
    const query = input.value.trim()
    if (!query) { // an empty query asks nothing; clearing the box goes back to the list
      if (state.shown && !input.value) reset()
      return
    }
    if (!more && query === state.query && state.shown && byId('search-error').hidden) return
    const mine = ++state.seq
    show(true)
    byId('search-error').hidden = true
    if (!more) byId('search-summary').textContent = `Searching for “${query}”…`
    const cursor = more ? `&cursor=${encodeURIComponent(state.cursor)}` : ''
    try {
      // The workspace shown (not yet known: the server searches the token's own, or an admin's all).
      const workspace = ctx.list.workspace === null ? '' : `&workspace_id=${encodeURIComponent(ctx.list.workspace)}`
      const page = await ctx.api('GET', `/search?q=${encodeURIComponent(query)}${workspace}&limit=${PAGE}${cursor}`)
      if (mine !== state.seq) return
      state.query = query
      state.items = more ? [...state.items, ...page.items] : page.items
      state.cursor = page.next_cursor
      render(more ? page.items : state.items, !more)
    } catch (err) {
      if (mine !== state.seq) return
      if (!more) {
        state.query = ''
        byId('search-results').replaceChildren()
        byId('search-summary').textContent = ''
      }
      problem(err)
    }
  }

  function render (items, fresh) {
    const ul = byId('search-results')
    if (fresh) ul.replaceChildren()
    for (const hit of items) ul.append(hitItem(hit))
    const n = state.items.length
    byId('search-summary').textContent = n === 0
      ? `No note matches “${state.query}”.`
      : `${n}${state.cursor ? '+' : ''} ${n === 1 ? 'note matches' : 'notes match'} “${state.query}”`
    byId('search-more').hidden = !state.cursor
    markOpen()
  }

  function hitItem (hit) {
    const li = el('li', 'search-hit')
    const a = document.createElement('a')
    a.className = 'hit-link'
    a.href = `#/note/${encodeURIComponent(hit.note_id)}`
    a.dataset.id = hit.note_id
    const title = el('span', 'hit-title')
    appendMarked(title, hit.title || 'Untitled', hit.title_highlights)
    const snippet = el('span', 'hit-snippet')
    // The snippet is cut from the body: "…" says so where snippet_html has it.
    const html = hit.snippet_html || ''
    if (hit.snippet) {
      if (html.startsWith('…')) snippet.append('…')
      appendMarked(snippet, hit.snippet, hit.highlights)
      if (html.endsWith('…')) snippet.append('…')
    }
    a.append(title, snippet)
    a.addEventListener('click', (e) => {
      e.preventDefault()
      openHit(hit, li)
    })
    li.append(a)
    return li
  }

  function hitProblem (li, text, actions) {
    li.classList.add('gone')
    li.querySelector('.hit-problem')?.remove()
    const box = el('div', 'hit-problem')
    box.setAttribute('role', 'alert')
    box.append(el('p', '', text), el('p', 'actions'))
    box.lastChild.append(...actions.map(([label, fn]) => button(label, fn)))
    li.append(box)
  }

  async function openHit (hit, li) {
    const id = hit.note_id
    li.querySelector('.hit-problem')?.remove()
    try {
      await ctx.api('GET', `/notes/${encodeURIComponent(id)}`)
    } catch (err) {
      if (err.status === 401) return
      const again = ['Search again', () => { state.query = ''; run() }]
      if (err.status === 404) {
        return hitProblem(li, `“${hit.title || 'Untitled'}” no longer exists: it was deleted after this search. It may be in the trash.`, [
          again,
          ['Look in the trash', () => { reset(); ctx.list.showTrash(true) }],
        ])
      }
      if (err.status === 403) return hitProblem(li, 'This token no longer gives access to this note.', [again])
      if (err.status === 0) return hitProblem(li, 'The server cannot be reached: try again when it is back.', [['Try again', () => openHit(hit, li)]])
      return hitProblem(li, `The note cannot be opened: ${err.message}`, [['Try again', () => openHit(hit, li)]])
    }
    li.classList.remove('gone')
    ctx.notes.reveal(id, { snippet: hit.snippet, highlights: hit.highlights })
    ctx.navigate(`#/note/${encodeURIComponent(id)}`)
    markOpen()
  }

  function markOpen () {
    const open = ctx.openNoteId()
    for (const a of byId('search-results').querySelectorAll('.hit-link')) a.classList.toggle('active', a.dataset.id === open)
  }

  input.addEventListener('input', () => {
    clearTimeout(state.timer)
    if (!input.value.trim()) return run()
    state.timer = setTimeout(run, TYPING_MS)
  })
  input.addEventListener('keydown', (e) => { if (e.key === 'Escape') reset() })
  byId('search-form').addEventListener('submit', (e) => {
    e.preventDefault()
    state.query = '' // Enter searches again, even for the same words
    run()
  })
  byId('search-close').addEventListener('click', reset)
  byId('search-more').addEventListener('click', () => run({ more: true }))

  return { reset, markOpen, get shown () { return state.shown } }
}
