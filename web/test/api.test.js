import { expect, test } from 'vitest'
import { HttpError, allPages } from '../src/api.js'

// A list endpoint of 450 items served 200 at a time, as the server pages them.
function paged (total) {
  const calls = []
  const api = async (method, path) => {
    calls.push(path)
    const url = new URL(path, 'http://x')
    const start = Number(url.searchParams.get('cursor') || 0)
    const limit = Number(url.searchParams.get('limit'))
    const items = Array.from({ length: Math.min(limit, total - start) }, (_, i) => start + i)
    return { items, next_cursor: start + limit < total ? String(start + limit) : null }
  }
  return { api, calls }
}

test('every page is fetched, following next_cursor', async () => {
  const { api, calls } = paged(450)
  const items = await allPages(api, '/notes?workspace_id=w')
  expect(items).toEqual(Array.from({ length: 450 }, (_, i) => i))
  expect(calls).toEqual(['/notes?workspace_id=w&limit=200', '/notes?workspace_id=w&limit=200&cursor=200', '/notes?workspace_id=w&limit=200&cursor=400'])
})

test('a list that fits one page takes one call', async () => {
  const { api, calls } = paged(3)
  expect(await allPages(api, '/workspaces')).toEqual([0, 1, 2])
  expect(calls).toEqual(['/workspaces?limit=200'])
})

test('errors carry the status', () => {
  const err = new HttpError(404, 'note not found')
  expect([err.status, err.message]).toEqual([404, 'note not found'])
  expect(new HttpError(0).message).toBe('HTTP 0')
})
