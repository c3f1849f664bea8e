// The notes list patched by one change-feed event (pure: notes-list.js renders it).

/**
 * The list after one change-feed event, or null when it cannot be worked out from the event
 * alone (then the list is read again). `notes` is newest first, as the server lists them; in
 * the trash (`trash`) only deletions and undeletions matter.
 */
export function applyEvent (notes, event, { trash = false } = {}) {
  const { type, note_id: id, at } = event
  const index = notes.findIndex((n) => n.id === id)
  const without = notes.filter((n) => n.id !== id)
  if (trash) {
    if (type === 'restored') return without
    if (type === 'deleted') return null // its deleted_at and title: read the trash again
    return notes
  }
  switch (type) {
    case 'created':
      if (index !== -1) return notes
      return [{ id, workspace_id: event.workspace_id, title: event.title ?? '', created_at: at, updated_at: at, deleted_at: null }, ...notes]
    case 'restored':
      return null // where it goes depends on when it last changed: read the list again
    case 'renamed':
    case 'changed':
      if (index === -1) return null
      return [{ ...notes[index], ...(type === 'renamed' ? { title: event.title } : {}), updated_at: at }, ...without]
    case 'deleted':
      return index === -1 ? notes : without
    default:
      return notes
  }
}
