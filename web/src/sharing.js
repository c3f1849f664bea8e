// Share links (admins): a link signs whoever opens it in with a new editor or viewer token of
// the workspace; the links made are listed and can be revoked.
import { byId, button, el } from './dom.js'
import { longTime } from './words.js'

const ROLE_WORDS = { editor: 'may edit', viewer: 'may read', admin: 'admin' }

export function createSharing (ctx) {
  async function open () {
    ctx.showView('sharing')
    byId('sharing-workspace').textContent = `“${ctx.list.workspaceName(ctx.list.workspace)}”`
    byId('share-made').hidden = true
    byId('share-error').hidden = true
    await load()
  }

  async function load () {
    const ul = byId('share-list')
    try {
      const { items } = await ctx.api('GET', `/tokens?workspace_id=${encodeURIComponent(ctx.list.workspace)}`)
      ul.replaceChildren()
      for (const t of items) {
        const li = el('li', 'share-item')
        li.dataset.tokenId = t.id
        li.append(
          el('span', 'share-name', t.name || '(no name)'),
          el('span', 'muted', ` ${ROLE_WORDS[t.role] || t.role} · made ${longTime(t.created_at)} · token ${t.id} `),
          button('Revoke', () => revoke(t), 'danger'),
        )
        ul.append(li)
      }
      if (!items.length) ul.append(el('li', 'empty', 'No links yet.'))
    } catch (err) { fail('Could not list the links', err) }
  }

  function fail (what, err) {
    byId('share-error').textContent = err.status === 0 ? `${what}: the server cannot be reached.` : `${what}: ${err.message}`
    byId('share-error').hidden = false
  }

  async function create (e) {
    e.preventDefault()
    byId('share-error').hidden = true
    try {
      const made = await ctx.api('POST', '/tokens', {
        role: byId('share-role').value,
        workspace_id: ctx.list.workspace,
        name: byId('share-name').value.trim(),
      })
      byId('share-link').value = `${location.origin}/#token=${made.token}`
      byId('share-made').hidden = false
      byId('share-name').value = ''
      await load()
    } catch (err) { fail('Could not create a link', err) }
  }

  async function revoke (t) {
    try {
      await ctx.api('DELETE', `/tokens/${encodeURIComponent(t.id)}`)
      byId('share-made').hidden = true
      await load()
    } catch (err) { fail('Could not revoke the link', err) }
  }

  byId('open-sharing').addEventListener('click', () => ctx.navigate('#/share'))
  byId('close-sharing').addEventListener('click', () => ctx.navigate('#/'))
  byId('share-form').addEventListener('submit', create)
  byId('share-copy').addEventListener('click', async () => {
    const input = byId('share-link')
    input.select()
    try { await navigator.clipboard.writeText(input.value); byId('share-copy').textContent = 'Copied' } catch { /* selected: Ctrl+C works */ }
  })

  return { open }
}
