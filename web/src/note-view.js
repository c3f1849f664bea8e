// The open note: its metadata, the editor (editor.js, loaded on demand), the browser's copy
// for offline work, whether what was typed is on the server yet, the Markdown preview, and
// what the server's close codes mean for the page.
import * as codes from './closecodes.js'
import { byId } from './dom.js'
import { matchRange } from './highlight.js'

const RETRY_MS = 3000
const SAVE_CHECK_MS = 800
const TITLES_KEY = 'coscribe.titles' // id -> title, to name a note opened while offline
const NARROW = '(max-width: 760px)'

const loadEditor = () => import('./editor.js')
const loadPreview = () => import('./preview.js')

function rememberTitle (id, title) {
  try {
    const titles = JSON.parse(localStorage.getItem(TITLES_KEY) || '{}')
    titles[id] = title
    localStorage.setItem(TITLES_KEY, JSON.stringify(titles))
  } catch { /* a full or broken store only loses the offline title */ }
}
function rememberedTitle (id) {
  try { return JSON.parse(localStorage.getItem(TITLES_KEY) || '{}')[id] ?? null } catch { return null }
}

export function createNoteView (ctx) {
  // The one open note, or null. Replaced as a whole on every open.
  let note = null
  let seq = 0
  // A search hit to show once its note is open: { id, snippet, highlights }.
  let pendingReveal = null

  const current = () => note
  const editor = () => note?.editor ?? null

  function close () {
    if (!note) return
    clearTimeout(note.retry)
    clearTimeout(note.saveTimer)
    clearTimeout(note.previewTimer)
    clearTimeout(note.diffTimer)
    note.editor?.destroy()
    note = null
    byId('editor').replaceChildren()
    byId('presence').replaceChildren()
    byId('preview').replaceChildren()
  }

  async function open (id, { versionId = null } = {}) {
    const mine = ++seq
    close()
    if (pendingReveal && pendingReveal.id !== id) pendingReveal = null
    ctx.showView('note')
    byId('loading').hidden = false
    byId('loading').textContent = 'Loading the note…'
    byId('editor').hidden = true
    byId('note-banner').hidden = true
    byId('offline-banner').hidden = true
    ctx.history.reset(id)
    byId('history').hidden = true
    byId('title').value = ''
    let meta = null
    let unreachable = false
    try {
      meta = await ctx.api('GET', `/notes/${encodeURIComponent(id)}`)
    } catch (err) {
      if (mine !== seq || err.status === 401) return
      if (err.status === 403) return ctx.noAccess(id)
      if (err.status === 404) {
        ctx.showProblem('This note does not exist', `There is no note “${id}”, or it was deleted. Pick another note on the left, look in the trash, or create a new one.`, [ctx.backToList])
        ctx.setStatus('offline', 'Error')
        return
      }
      if (err.status !== 0) {
        ctx.showProblem('The note cannot be opened', err.message, [['Retry', () => open(id)], ctx.backToList])
        ctx.setStatus('offline', 'Error')
        return
      }
      unreachable = true
    }
    let editorModule
    try {
      editorModule = await loadEditor()
    } catch {
      if (mine !== seq) return
      ctx.showProblem('The editor cannot be loaded',
        'The server cannot be reached, and this browser has not kept the editor yet (it does once a note was opened with the server up). This page retries by itself every few seconds.',
        [['Retry now', () => open(id)], ctx.backToList])
      ctx.setStatus('offline', 'Server unreachable')
      setTimeout(() => { if (mine === seq && !note) open(id) }, RETRY_MS)
      return
    }
    const { checkOfflineCopy, clearOfflineCopy, openEditor } = editorModule
    if (mine !== seq) return
    const copy = await checkOfflineCopy(id)
    if (mine !== seq) return
    if (copy.state === 'corrupt') {
      const again = ['Open the note from the server', async () => { await clearOfflineCopy(id); open(id) }]
      ctx.showProblem('This browser\'s copy of the note is damaged',
        `The copy of this note kept in this browser for offline work cannot be read (${copy.reason}), so it was not used, and nothing was sent to the server: the note on the server is unchanged. Discard the damaged copy to open the note from the server.`,
        unreachable ? [ctx.backToList] : [again, ctx.backToList])
      ctx.setStatus('offline', 'Damaged offline copy')
      return
    }
    if (unreachable && copy.state === 'none') {
      ctx.showProblem('The coscribe server cannot be reached',
        'This note is not kept in this browser, so it cannot be opened while the server is down. Start it again (scripts/serve); this page retries by itself every few seconds.',
        [['Retry now', () => open(id)], ctx.backToList])
      ctx.setStatus('offline', 'Server unreachable')
      setTimeout(() => { if (mine === seq && !note) open(id) }, RETRY_MS)
      return
    }
    if (meta) {
      rememberTitle(id, meta.title || '')
      ctx.list.setWorkspace(meta.workspace_id)
      await ctx.session.whoAmI()
      if (mine !== seq) return
    }
    byId('title').value = meta ? (meta.title || '') : (rememberedTitle(id) ?? '')
    // unsaved: the page may hold changes the server does not have. While the socket is up and
    // synced, y-websocket sends every change at once; changes made without it, and what the
    // browser's copy brought, are checked against the server once it answers.
    const n = { id, meta, synced: false, terminal: false, unsaved: unreachable || copy.state === 'ok', saveTimer: null, retry: null, previewSeq: 0, editor: null }
    note = n
    n.editor = await openEditor({
      noteId: id,
      token: ctx.session.state.token,
      useOffline: true,
      user: ctx.presence.awarenessUser(),
      editable: ctx.session.state.canWrite !== false,
      events: {
        status: () => { if (note === n) ctx.refreshStatus() },
        synced: () => { if (note === n) onSynced(n) },
        closed: (event, denied) => { if (note === n) onClosed(n, event, denied) },
        localChange: () => { if (note === n) onLocalChange(n) },
        text: () => { if (note === n) onText(n) },
        awareness: () => { if (note === n) ctx.presence.render() },
        languageLoaded: () => ctx.cacheAssets(),
      },
    })
    if (note !== n) { n.editor.destroy(); return }
    ctx.cacheAssets()
    if (unreachable || copy.state === 'ok') {
      // The browser's copy is shown at once; the server's changes merge in when it answers.
      show(n)
      if (unreachable) offlineBanner(n)
    }
    ctx.presence.render()
    n.retry = setTimeout(() => {
      if (note === n && !n.synced && !n.editor.view) byId('loading').textContent = 'Still connecting to the server… the note appears as soon as it is loaded.'
    }, 4000)
    ctx.renderAccess()
    ctx.list.render()
    ctx.refreshStatus()
    if (versionId !== null) {
      ctx.history.open(true)
      ctx.history.select(versionId)
    }
  }

  function show (n) {
    if (n.editor.view) return
    n.editor.mount(byId('editor'))
    byId('loading').hidden = true
    byId('editor').hidden = false
    renderPreview(n)
  }

  async function onSynced (n) {
    const first = !n.synced
    n.synced = true
    show(n)
    const banner = byId('note-banner')
    if (banner.dataset.untilSynced === 'true') banner.hidden = true
    if (first && !n.meta) {
      // Opened from the browser's copy while the server was down: now it answers.
      try {
        n.meta = await ctx.api('GET', `/notes/${encodeURIComponent(n.id)}`)
        if (note === n && !byId('title').value) byId('title').value = n.meta.title || ''
        await ctx.session.whoAmI()
        if (note === n) ctx.renderAccess()
      } catch { /* the close codes say what is wrong */ }
    }
    scheduleSaveCheck(n, 0)
    ctx.refreshStatus()
    showReveal(n)
  }

  /** Open note `id` at a search hit: the first match selected and scrolled to. */
  function reveal (id, hit) {
    pendingReveal = { id, ...hit }
    if (note && note.id === id && note.synced) showReveal(note)
  }

  function showReveal (n) {
    if (!pendingReveal || pendingReveal.id !== n.id || !n.editor?.view) return
    const { snippet, highlights } = pendingReveal
    pendingReveal = null
    const range = matchRange(n.editor.text(), snippet, highlights)
    if (range) n.editor.select(range.from, range.to)
    else if (highlights?.length) ctx.notice('The words found are no longer in the note: it changed after the search.')
  }

  function onLocalChange (n) {
    if (n.editor.connected && n.synced) {
      if (n.unsaved) scheduleSaveCheck(n, SAVE_CHECK_MS)
      return
    }
    n.unsaved = true
    offlineBanner(n)
    ctx.refreshStatus()
  }

  function scheduleSaveCheck (n, delay) {
    clearTimeout(n.saveTimer)
    n.saveTimer = setTimeout(() => checkSaved(n), delay)
  }

  // Is everything this page holds on the server? Its state vector covers ours and the text
  // is the same: then nothing typed here is missing there (deletions included).
  async function checkSaved (n) {
    if (note !== n || !n.unsaved) return true
    if (!n.editor.connected || !n.synced) return false
    try {
      const [vector, content] = await Promise.all([
        ctx.api('GET', `/notes/${encodeURIComponent(n.id)}/state-vector`),
        ctx.api('GET', `/notes/${encodeURIComponent(n.id)}/content`),
      ])
      if (note !== n) return false
      const server = n.editor.decodeStateVector(vector)
      const covered = [...n.editor.stateVector()].every(([client, clock]) => (server.get(client) || 0) >= clock)
      if (covered && (content.content?.content ?? '') === n.editor.text()) {
        n.unsaved = false
        offlineBanner(n)
        ctx.refreshStatus()
        return true
      }
    } catch { /* unreachable: asked again */ }
    if (note === n) scheduleSaveCheck(n, RETRY_MS)
    return false
  }

  /** Wait (a few seconds at most) until what this page holds is on the server: checked, as
   * the last keystrokes may still be on their way. */
  async function waitSaved (timeoutMs = 5000) {
    const n = note
    if (!n) return
    n.unsaved = true
    const deadline = Date.now() + timeoutMs
    while (note === n && n.unsaved && Date.now() < deadline) {
      if (await checkSaved(n)) return
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }

  function offlineBanner (n) {
    const banner = byId('offline-banner')
    if (!n.unsaved || n.editor?.connected) {
      banner.hidden = true
      return
    }
    banner.textContent = 'Not saved to the server yet: the server cannot be reached. What you type is kept in this browser (also across a reload) and sent as soon as the server is back.'
    banner.hidden = false
  }

  function onClosed (n, { code, reason }, denied) {
    n.terminal = true
    if (code === codes.UNAUTHORIZED) {
      ctx.session.refuse(ctx.session.state.token ? 'revoked' : 'missing', reason || denied)
    } else if (code === codes.FORBIDDEN) {
      close()
      ctx.noAccess(n.id)
    } else if (code === codes.NOTE_NOT_FOUND) {
      ctx.setStatus('offline', 'Note deleted')
      ctx.showProblem('This note was deleted', 'Someone deleted this note, so it can no longer be edited. You can bring it back (it is in the trash), or go back to the notes.', [
        ['Undelete it', async () => {
          try { await ctx.api('POST', `/notes/${encodeURIComponent(n.id)}/undelete`); open(n.id) } catch (err) { ctx.alertProblem('Could not undelete', err) }
        }],
        ctx.backToList,
      ])
      close()
      ctx.list.refresh()
    } else {
      ctx.setStatus('offline', `Closed (${code})`)
      ctx.showProblem('The note cannot be opened', code === codes.BAD_NOTE_ID ? `“${n.id}” is not a valid note id (letters, digits, _ and - only).` : `The server closed the connection (code ${code}).`, [ctx.backToList])
      close()
    }
  }

  function onText (n) {
    renderPreviewSoon(n)
    if (!ctx.history.visible) return
    clearTimeout(n.diffTimer)
    n.diffTimer = setTimeout(() => { if (note === n) ctx.history.showDiff() }, 300)
  }

  // ------------------------------------------------------------ Markdown preview

  const previewWanted = () => byId('toggle-preview').getAttribute('aria-pressed') === 'true'

  function renderPreviewSoon (n) {
    if (!previewWanted()) return
    clearTimeout(n.previewTimer)
    n.previewTimer = setTimeout(() => renderPreview(n), 150)
  }

  async function renderPreview (n) {
    if (!previewWanted() || note !== n) return
    const mine = ++n.previewSeq
    const { renderMarkdown } = await loadPreview()
    if (note !== n || mine !== n.previewSeq) return
    byId('preview').innerHTML = renderMarkdown(n.editor.text())
  }

  const narrow = window.matchMedia(NARROW)

  // `remember`: a choice made on a wide screen is kept for the next page; on a phone the
  // editor comes first every time.
  function setPreview (on, remember = true) {
    byId('toggle-preview').setAttribute('aria-pressed', String(on))
    byId('toggle-preview').textContent = on && narrow.matches ? 'Edit' : 'Preview'
    byId('preview').hidden = !on
    byId('note-body').classList.toggle('previewing', on)
    if (remember && !narrow.matches) localStorage.setItem('coscribe.preview', on ? 'on' : 'off')
    if (on && note) renderPreview(note)
  }

  // Side by side on wide screens (shown unless turned off); on phones a toggle between the two.
  const widePreview = () => !narrow.matches && localStorage.getItem('coscribe.preview') !== 'off'
  setPreview(widePreview(), false)
  narrow.addEventListener('change', () => setPreview(widePreview(), false))
  byId('toggle-preview').addEventListener('click', () => setPreview(!previewWanted()))

  // ------------------------------------------------------------ title, rename, delete

  async function rename () {
    if (!note) return
    const title = byId('title').value.trim() || 'Untitled'
    try {
      await ctx.api('PATCH', `/notes/${encodeURIComponent(note.id)}`, { title })
      rememberTitle(note.id, title)
      ctx.list.refresh()
    } catch (err) { ctx.alertProblem('Could not rename', err) }
  }
  // Someone renamed the open note (the change feed): the title box follows, unless this page
  // is typing a title of its own.
  function onNoteEvent (event) {
    if (!note || event.note_id !== note.id || event.type !== 'renamed') return
    rememberTitle(note.id, event.title)
    if (note.meta) note.meta.title = event.title
    if (document.activeElement !== byId('title')) byId('title').value = event.title
  }

  byId('rename').addEventListener('click', rename)
  byId('title').addEventListener('keydown', (e) => { if (e.key === 'Enter') rename() })

  byId('delete').addEventListener('click', async () => {
    if (!note) return
    const id = note.id
    if (!confirm(`Delete “${byId('title').value || 'Untitled'}”? Everyone editing it is disconnected. It stays in the trash, where it can be undeleted.`)) return
    try {
      await ctx.api('DELETE', `/notes/${encodeURIComponent(id)}`)
      close()
      ctx.navigate('#/')
      ctx.list.refresh()
    } catch (err) { ctx.alertProblem('Could not delete', err) }
  })

  return { open, close, current, editor, waitSaved, onNoteEvent, reveal, get seq () { return seq }, bump: () => ++seq }
}
