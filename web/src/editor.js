// One open note: its Y.Doc, the browser's copy of it (y-indexeddb), the websocket to the
// server (y-websocket, the token in the `bearer.TOKEN` subprotocol) and the CodeMirror editor
// bound to the root Y.Text `content`, with Markdown highlighting. Loaded on demand: this
// module carries yjs and CodeMirror, the bulk of the bundle; the Markdown language (which
// brings HTML, CSS and JavaScript for embedded blocks) follows once the editor shows.
import * as Y from 'yjs'
import { WebsocketProvider, messageAuth } from 'y-websocket'
import * as authProtocol from 'y-protocols/auth'
import { IndexeddbPersistence, clearDocument } from 'y-indexeddb'
import * as idb from 'lib0/indexeddb'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { Compartment, EditorState } from '@codemirror/state'
import {
  EditorView, crosshairCursor, drawSelection, dropCursor, highlightActiveLine, highlightSpecialChars,
  keymap, rectangularSelection,
} from '@codemirror/view'
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language'
import { defaultKeymap } from '@codemirror/commands'
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search'
import { socketProtocols } from './token.js'

// The origin of a restore done in this page: tracked by the undo manager, so Ctrl+Z right
// after a restore takes exactly the restore back.
const RESTORE = Symbol('coscribe restore')
const OFFLINE_WAIT_MS = 3000

const offlineName = (noteId) => `coscribe-note-${noteId}`

/**
 * What this browser keeps of a note: { state: 'none' } (nothing), { state: 'ok', text } or
 * { state: 'corrupt', reason } (it does not decode into a document: it is never used).
 */
export async function checkOfflineCopy (noteId) {
  let db
  try {
    db = await idb.openDB(offlineName(noteId), (db) => idb.createStores(db, [['updates', { autoIncrement: true }], ['custom']]))
  } catch (err) {
    return { state: 'corrupt', reason: err?.message || String(err) }
  }
  const scratch = new Y.Doc()
  try {
    const [store] = idb.transact(db, ['updates'], 'readonly')
    const updates = await idb.getAll(store)
    for (const update of updates) {
      if (!(update instanceof Uint8Array)) throw new Error('an entry is not a Yjs update')
      Y.applyUpdate(scratch, update)
    }
    if (scratch.store.pendingStructs || scratch.store.pendingDs) throw new Error('updates are missing')
    if (scratch.store.clients.size === 0) return { state: 'none' }
    return { state: 'ok', text: scratch.getText('content').toString() }
  } catch (err) {
    return { state: 'corrupt', reason: err?.message || String(err) }
  } finally {
    scratch.destroy()
    db.close()
  }
}

export function clearOfflineCopy (noteId) {
  return clearDocument(offlineName(noteId))
}

// CodeMirror's basic setup, less what a notes editor does without: line numbers and folding,
// autocompletion and linting, and CodeMirror's own undo history (Y.UndoManager undoes, so
// that only this page's changes are undone, never other people's).
const setup = [
  highlightSpecialChars(),
  drawSelection(),
  dropCursor(),
  EditorState.allowMultipleSelections.of(true),
  indentOnInput(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  bracketMatching(),
  rectangularSelection(),
  crosshairCursor(),
  highlightActiveLine(),
  highlightSelectionMatches(),
  keymap.of([...defaultKeymap, ...searchKeymap]),
]

const editableExtensions = (editable) => editable ? [] : [EditorState.readOnly.of(true), EditorView.editable.of(false)]

/**
 * Open a note. `events`: status(), synced(), closed({code, reason}, deniedReason),
 * localChange(), text(text), awareness(), languageLoaded(). Returns the handle the page drives.
 */
export async function openEditor ({ noteId, token, useOffline, user, editable, events }) {
  const doc = new Y.Doc()
  const ytext = doc.getText('content')
  let persistence = null
  if (useOffline) {
    persistence = new IndexeddbPersistence(offlineName(noteId), doc)
    await Promise.race([persistence.whenSynced, new Promise((resolve) => setTimeout(resolve, OFFLINE_WAIT_MS))])
  }
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
  const provider = new WebsocketProvider(wsUrl, noteId, doc, {
    maxBackoffTime: 3000,
    protocols: socketProtocols(token) || [],
  })
  let denied = ''
  // The server says why before it closes a refused socket (then 4401 or 4403): keep the reason
  // for the page instead of y-websocket's console warning.
  provider.messageHandlers[messageAuth] = (_encoder, decoder) => {
    authProtocol.readAuthMessage(decoder, doc, (_doc, reason) => { denied = reason })
  }
  provider.awareness.setLocalStateField('user', user)
  provider.on('status', () => events.status())
  provider.on('connection-close', () => events.status())
  provider.on('sync', (isSynced) => { if (isSynced) events.synced() })
  provider.on('closed', (event) => events.closed(event, denied))
  provider.awareness.on('change', () => events.awareness())
  doc.on('update', (_update, origin) => {
    if (origin !== provider && origin !== persistence) events.localChange()
  })
  ytext.observe(() => events.text(ytext.toString()))

  const undoManager = new Y.UndoManager(ytext, { trackedOrigins: new Set([RESTORE]) })
  const editability = new Compartment()
  const language = new Compartment()
  let view = null

  return {
    doc,
    ytext,
    provider,
    undoManager,
    get clientId () { return doc.clientID },
    get connected () { return provider.wsconnected },
    get failedReconnects () { return provider.wsUnsuccessfulReconnects },
    get view () { return view },
    text: () => ytext.toString(),
    /** Show the editor in `parent` (once the note is known: synced, or from the offline copy). */
    mount (parent) {
      if (view) return
      view = new EditorView({
        state: EditorState.create({
          doc: ytext.toString(),
          extensions: [
            keymap.of(yUndoManagerKeymap),
            setup,
            language.of([]),
            EditorView.lineWrapping,
            EditorView.contentAttributes.of({ 'aria-label': 'Note text' }),
            editability.of(editableExtensions(editable)),
            yCollab(ytext, provider.awareness, { undoManager }),
          ],
        }),
        parent,
      })
      import('@codemirror/lang-markdown').then(({ markdown }) => {
        view?.dispatch({ effects: language.reconfigure(markdown()) })
        events.languageLoaded?.()
      }, () => { /* not reachable (offline, not kept): plain text until the next open */ })
    },
    setEditable (value) {
      editable = value
      view?.dispatch({ effects: editability.reconfigure(editableExtensions(value)) })
    },
    setUser (value) { provider.awareness.setLocalStateField('user', value) },
    /** Select from..to (UTF-16 offsets) and scroll it to the middle of the view. */
    select (from, to) {
      if (!view) return
      const length = view.state.doc.length
      const anchor = Math.min(from, length)
      view.dispatch({ selection: { anchor, head: Math.min(to, length) }, effects: EditorView.scrollIntoView(anchor, { y: 'center' }) })
      view.focus()
    },
    selectedText: () => {
      if (!view) return null
      const { from, to } = view.state.selection.main
      return view.state.sliceDoc(from, to)
    },
    states: () => [...provider.awareness.getStates().entries()],
    /** Replace the whole text as one change of this page's own, which Ctrl+Z takes back. */
    restore (text) {
      undoManager.stopCapturing()
      doc.transact(() => {
        if (ytext.length) ytext.delete(0, ytext.length)
        if (text) ytext.insert(0, text)
      }, RESTORE)
      undoManager.stopCapturing()
      view?.focus()
    },
    /** The state vector, to compare with the server's. */
    stateVector: () => Y.decodeStateVector(Y.encodeStateVector(doc)),
    decodeStateVector: (bytes) => Y.decodeStateVector(bytes),
    destroy () {
      view?.destroy()
      provider.destroy()
      persistence?.destroy()
      doc.destroy()
    },
  }
}
