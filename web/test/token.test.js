import { describe, expect, test } from 'vitest'
import { socketProtocols, splitTokenFromHash, tokenFromInput, tokenId, tokenLabel } from '../src/token.js'

const T = 'cs_0123456789abcdef_' + 'A'.repeat(43)

describe('tokens in addresses', () => {
  test('a fragment that is only a token leaves nothing', () => {
    expect(splitTokenFromHash(`token=${T}`)).toEqual({ token: T, rest: '' })
  })
  test('a token next to a route keeps the route', () => {
    expect(splitTokenFromHash(`/note/abc&token=${T}`)).toEqual({ token: T, rest: '/note/abc' })
    expect(splitTokenFromHash(`token=${T}&x=1`)).toEqual({ token: T, rest: 'x=1' })
    expect(splitTokenFromHash(`/note/a?token=${T}&x=1`)).toEqual({ token: T, rest: '/note/a?x=1' })
  })
  test('no token, an empty one, a malformed one', () => {
    expect(splitTokenFromHash('/note/abc')).toBeNull()
    expect(splitTokenFromHash('token=')).toEqual({ token: null, rest: '' })
    expect(splitTokenFromHash('token=%E0%A4%A')).toEqual({ token: null, rest: '' })
  })
  test('pasted text: the bare token or a whole link', () => {
    expect(tokenFromInput(`  ${T} `)).toBe(T)
    expect(tokenFromInput(`http://h:8000/#token=${T}`)).toBe(T)
    expect(tokenFromInput('two words')).toBeNull()
    expect(tokenFromInput('')).toBeNull()
  })
  test('the id names a token without its secret', () => {
    expect(tokenId(T)).toBe('0123456789abcdef')
    expect(tokenLabel(T)).toBe('token 0123456789abcdef')
    expect(tokenLabel('junk')).toBe('a token')
  })
})

describe('the token on the websocket', () => {
  test('rides in the bearer subprotocol, never in the URL', () => {
    expect(socketProtocols(T)).toEqual([`bearer.${T}`, 'coscribe'])
    expect(socketProtocols(null)).toEqual([])
  })
  test('a token a subprotocol cannot carry is not sent', () => {
    expect(socketProtocols('a b')).toBeNull()
    expect(socketProtocols('a,b')).toBeNull()
  })
})
