// End-to-end test of the web editor in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core from web/node_modules; no browser is ever downloaded).
//
//   node tests/e2e/e2e.mjs BASE_URL OUTPUT_DIR
//
// Run by tests/e2e/test_web_e2e.py against a live `coscribe serve`. When the script needs the
// server stopped or started again it prints `@@stop-server` / `@@start-server` and waits for a
// line on stdin. Every check prints `ok - ...`; the first failure throws and exits 1.
import { createRequire } from 'node:module'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import readline from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const require = createRequire(path.join(here, '..', '..', 'web', 'package.json'))
const { chromium } = require('playwright-core')

const BASE = process.argv[2]
const OUT = process.argv[3] || path.join(here, '..', '..', 'test-output')
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const T = 15000
mkdirSync(OUT, { recursive: true })

const stdin = readline.createInterface({ input: process.stdin })
const lines = stdin[Symbol.asyncIterator]()
async function askHarness (what) {
  console.log(`@@${what}`)
  const { value, done } = await lines.next()
  if (done || value.trim() !== 'ok') throw new Error(`harness did not ${what}: ${value}`)
}

const ok = (what) => console.log(`ok - ${what}`)
function assert (cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`)
  ok(what)
}

async function rest (method, p, body) {
  const r = await fetch(`${BASE}/api${p}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  })
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`)
  return r.status === 204 ? null : r.json()
}

// Console errors, by phase: while the server is up and the input is good there must be none.
const consoleErrors = []
let phase = 'normal'
function watch (page, name) {
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push({ phase, name, text: msg.text() }) })
  page.on('pageerror', (err) => consoleErrors.push({ phase, name, text: `pageerror: ${err.message}` }))
  return page
}

async function newPage (browser, name, color, viewport) {
  const context = await browser.newContext({ viewport })
  await context.addInitScript(([n, c]) => {
    if (!localStorage.getItem('coscribe.name')) {
      localStorage.setItem('coscribe.name', n)
      localStorage.setItem('coscribe.color', c)
    }
  }, [name, color])
  const page = watch(await context.newPage(), name)
  return { context, page }
}

const crdtText = (page) => page.evaluate(() => window.coscribe.text())
async function waitText (page, pred, what) {
  await page.waitForFunction(pred, null, { timeout: T, polling: 100 }).catch(async () => {
    throw new Error(`FAILED: ${what}; text is ${JSON.stringify(await crdtText(page))}`)
  })
  ok(what)
}
const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true })

async function main () {
  // Assets: hashed names, long cache, gzip; index.html no-cache.
  const index = await fetch(`${BASE}/`, { headers: { 'Accept-Encoding': 'gzip' } })
  assert(index.status === 200 && index.headers.get('cache-control') === 'no-cache', '/ is served with Cache-Control: no-cache')
  const html = await index.text()
  const assets = [...html.matchAll(/\/assets\/[\w.-]+\.(?:js|css)/g)].map((m) => m[0])
  assert(assets.length >= 2 && assets.every((a) => /-[\w-]{8,}\.(js|css)$/.test(a)), `assets have hashed names: ${assets.join(', ')}`)
  const js = await fetch(`${BASE}${assets.find((a) => a.endsWith('.js'))}`, { headers: { 'Accept-Encoding': 'gzip' } })
  assert(js.headers.get('cache-control').includes('max-age=31536000') && js.headers.get('content-encoding') === 'gzip', 'assets are gzip-compressed with a one-year cache')

  const note = await rest('POST', '/notes', { title: 'E2E shared note' })
  const url = `${BASE}/#/note/${note.id}`
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  try {
    const A = await newPage(browser, 'Alice', '#1971c2', { width: 1280, height: 800 })
    const B = await newPage(browser, 'Bob', '#c2255c', { width: 360, height: 740 })
    const a = A.page
    const b = B.page

    // The workspace lists the note with its title.
    await a.goto(`${BASE}/`)
    await a.locator('.note-link', { hasText: 'E2E shared note' }).waitFor({ timeout: T })
    ok('the notes list shows the new note')
    await shot(a, 'desktop-list')
    await a.locator('.note-link', { hasText: 'E2E shared note' }).click()
    await b.goto(url)
    for (const p of [a, b]) await p.locator('.cm-content').waitFor({ timeout: T })
    ok('both pages open the note editor')
    await a.locator('#status[data-state="connected"]').waitFor({ timeout: T })
    ok('the connection state says connected')

    // Both type at the same time; both end with the same text holding both people's words.
    await Promise.all([
      (async () => { await a.locator('.cm-content').click(); await a.keyboard.type('Alice writes apples. ', { delay: 15 }) })(),
      (async () => { await b.locator('.cm-content').click(); await b.keyboard.type('Bob writes bananas. ', { delay: 15 }) })(),
    ])
    const both = () => { const t = window.coscribe.text() || ''; return t.includes('Alice writes apples.') && t.includes('Bob writes bananas.') }
    await waitText(a, both, 'page A holds both people\'s words')
    await waitText(b, both, 'page B holds both people\'s words')
    const [ta, tb] = [await crdtText(a), await crdtText(b)]
    assert(ta === tb, `both pages end with the same text (${JSON.stringify(ta)})`)
    const shown = await a.locator('.cm-content').innerText()
    assert(shown.includes('Alice writes apples.') && shown.includes('Bob writes bananas.'), 'the editor shows the merged text')

    // Presence: names in the list and on remote cursors.
    await a.locator('#presence li', { hasText: 'Bob' }).waitFor({ timeout: T })
    await b.locator('#presence li', { hasText: 'Alice' }).waitFor({ timeout: T })
    ok('each page lists the other person in the presence list')
    await a.locator('.cm-ySelectionInfo', { hasText: 'Bob' }).waitFor({ state: 'attached', timeout: T })
    ok('page A shows Bob\'s remote cursor with his name')
    const overflow = await b.evaluate(() => document.documentElement.scrollWidth)
    assert(overflow <= 360, `the page fits 360 px wide (scrollWidth ${overflow})`)
    await shot(a, 'desktop-two-editors')
    await shot(b, 'mobile-360-editor')

    // Text written through REST appears in the open pages.
    const before = await crdtText(a)
    await rest('PUT', `/notes/${note.id}/text`, { text: before + '\nWritten through REST.' })
    await waitText(a, () => (window.coscribe.text() || '').includes('Written through REST.'), 'PUT /text appears in page A')
    await waitText(b, () => (window.coscribe.text() || '').includes('Written through REST.'), 'PUT /text appears in page B')

    // History: save a version, change the text, view the version, restore it for everyone.
    await a.locator('#toggle-history').click()
    await a.locator('#save-version').click()
    await a.locator('.version', { hasText: 'saved by Alice' }).waitFor({ timeout: T })
    ok('a saved version is listed in the history panel')
    const versionText = await crdtText(a)
    await a.locator('.cm-content').click()
    await a.keyboard.press('Control+End')
    await a.keyboard.type(' Later words.')
    await waitText(b, () => (window.coscribe.text() || '').includes('Later words.'), 'later edit reaches page B')
    await a.locator('.version', { hasText: 'saved by Alice' }).click()
    await a.locator('#version-text').waitFor({ timeout: T })
    assert((await a.locator('#version-text').textContent()) === versionText, 'selecting a version shows its text')
    await shot(a, 'desktop-history')
    await a.locator('#restore').click()
    await waitText(b, () => !(window.coscribe.text() || '').includes('Later words.'), 'restore puts the version back for page B')
    assert((await crdtText(b)) === versionText && (await crdtText(a)) === versionText, 'both pages hold the restored text')

    // Rename from the editor, seen in the list.
    await a.locator('#title').fill('Renamed in the browser')
    await a.locator('#rename').click()
    await a.locator('.note-link', { hasText: 'Renamed in the browser' }).waitFor({ timeout: T })
    ok('renaming updates the notes list')

    // Reloading shows the text again.
    await b.reload()
    await b.locator('.cm-content').waitFor({ timeout: T })
    await waitText(b, () => (window.coscribe.text() || '').includes('Written through REST.'), 'after a reload page B shows the text again')
    assert((await crdtText(b)) === versionText, 'the reloaded page holds the note text')
    assert((await b.locator('.cm-content').innerText()).includes('Written through REST.'), 'the reloaded editor shows it')

    // Closing page B removes Bob from A's presence list.
    await a.locator('#presence li', { hasText: 'Bob' }).waitFor({ timeout: T })
    await B.context.close()
    await a.locator('#presence li', { hasText: 'Bob' }).waitFor({ state: 'detached', timeout: T })
    ok('Bob leaves A\'s presence list after his page closes')

    assert(consoleErrors.length === 0, `no console errors in normal use ${JSON.stringify(consoleErrors)}`)

    // Bad input: an unknown id, a deleted note; no empty editor is shown as if it were the note.
    phase = 'bad-input'
    const C = await newPage(browser, 'Carol', '#2b8a3e', { width: 1280, height: 800 })
    await C.page.goto(`${BASE}/#/note/no-such-note-e2e`)
    await C.page.locator('#problem', { hasText: 'does not exist' }).waitFor({ timeout: T })
    assert(!(await C.page.locator('#note').isVisible()), 'an unknown note id says so and shows no editor')
    await shot(C.page, 'unknown-note')
    const gone = await rest('POST', '/notes', { title: 'to delete', text: 'bye' })
    await rest('DELETE', `/notes/${gone.id}`)
    await C.page.goto(`${BASE}/#/note/${gone.id}`)
    await C.page.locator('#problem', { hasText: 'does not exist' }).waitFor({ timeout: T })
    ok('a deleted note id says it does not exist or was deleted')
    const live = await rest('POST', '/notes', { title: 'deleted while open', text: 'still here' })
    await C.page.goto(`${BASE}/#/note/${live.id}`)
    await waitText(C.page, () => window.coscribe.text() === 'still here', 'page C opens a note')
    await rest('DELETE', `/notes/${live.id}`)
    await C.page.locator('#problem', { hasText: 'was deleted' }).waitFor({ timeout: T })
    ok('deleting a note while it is open tells the page it was deleted and offers to undelete')
    await shot(C.page, 'deleted-while-open')
    await C.context.close()

    // Server down: the page says so, keeps the edits made meanwhile, and merges them back.
    phase = 'server-down'
    await askHarness('stop-server')
    await a.locator('#status[data-state="reconnecting"], #status[data-state="offline"]').waitFor({ timeout: T })
    ok(`the connection state shows "${await a.locator('#status').textContent()}" while the server is down`)
    await a.locator('.cm-content').click()
    await a.keyboard.press('Control+End')
    await a.keyboard.type(' Typed while offline.')
    await a.locator('#status[data-state="offline"]').waitFor({ timeout: T })
    ok(`after failed retries it says "${await a.locator('#status').textContent()}"`)
    await shot(a, 'server-down-editing')
    const D = await newPage(browser, 'Dan', '#e8590c', { width: 360, height: 740 })
    await D.page.goto(`${BASE}/`).catch(() => {})
    const E = await newPage(browser, 'Eve', '#5f3dc4', { width: 1280, height: 800 })
    await askHarness('start-server')
    phase = 'server-back'
    await a.locator('#status[data-state="connected"]').waitFor({ timeout: 30000 })
    ok('page A reconnects when the server is back')
    const deadline = Date.now() + T
    let stored = ''
    while (Date.now() < deadline) {
      stored = await rest('GET', `/notes/${note.id}/content`)
      if (JSON.stringify(stored).includes('Typed while offline.')) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    assert(JSON.stringify(stored).includes('Typed while offline.'), 'edits made while offline reach the server after reconnecting')
    await D.context.close()

    // A note opened while the server is unreachable: say so, never an empty editor.
    await E.page.goto(url)
    await E.page.locator('.cm-content').waitFor({ timeout: T })
    phase = 'server-down-2'
    await askHarness('stop-server')
    await E.page.evaluate(() => { location.hash = '#/note/another-note' })
    await E.page.locator('#problem', { hasText: 'cannot be reached' }).waitFor({ timeout: T })
    assert(!(await E.page.locator('#note').isVisible()), 'opening a note while the server is down says so and shows no editor')
    await shot(E.page, 'server-down-open')
    await askHarness('start-server')
    await E.context.close()
    await A.context.close()
  } finally {
    await browser.close()
  }
  const noisy = consoleErrors.filter((e) => e.phase === 'normal')
  assert(noisy.length === 0, 'no console errors outside the bad-input and server-down phases')
  console.log(`screenshots in ${OUT}`)
}

main().then(() => { console.log('e2e: all checks passed'); process.exit(0) }, (err) => {
  console.error(err.stack || String(err))
  console.log(JSON.stringify(consoleErrors))
  process.exit(1)
})
