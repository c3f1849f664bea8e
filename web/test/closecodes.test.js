// The close codes of the page are the server's (server/closecodes.py), name for name.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import * as codes from '../src/closecodes.js'

test('close codes match server/closecodes.py', () => {
  const python = readFileSync(fileURLToPath(new URL('../../server/closecodes.py', import.meta.url)), 'utf8')
  const server = Object.fromEntries([...python.matchAll(/^([A-Z_]+) = (\d+)/gm)].map((m) => [m[1], Number(m[2])]))
  const page = Object.fromEntries(Object.entries(codes).filter(([, v]) => typeof v === 'number'))
  expect(Object.keys(server).length).toBeGreaterThan(10)
  expect(page).toEqual(server)
  expect(codes.isFinal(codes.NOTE_NOT_FOUND) && !codes.isFinal(codes.TRY_AGAIN_LATER)).toBe(true)
})
