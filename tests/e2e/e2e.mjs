// End-to-end test of the web editor in a real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core from web/node_modules; no browser is ever downloaded).
//
//   node tests/e2e/e2e.mjs BASE_URL OUTPUT_DIR START_URL
//
// Run by tests/e2e/test_web_e2e.py against a live `coscribe serve` with auth on; START_URL is the
// `BASE_URL/#token=...` link the server printed on its first start (an admin token). When the
// script needs the server stopped or started again it prints `@@stop-server` / `@@start-server`,
// for a new token `@@token-create ROLE WORKSPACE`, to revoke one `@@token-revoke ID`, and waits
// for a line `ok [ANSWER]` on stdin. Every check prints `ok - ...`; the first failure throws and
// exits 1.
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
const START_URL = process.argv[4]
const TOKEN = new URL(START_URL).hash.replace(/^#token=/, '')
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const T = 15000
mkdirSync(OUT, { recursive: true })

const stdin = readline.createInterface({ input: process.stdin })
const lines = stdin[Symbol.asyncIterator]()
async function askHarness (what) {
  console.log(`@@${what}`)
  const { value, done } = await lines.next()
  const m = done ? null : /^ok(?: (.*))?$/.exec(value.trim())
  if (!m) throw new Error(`harness did not ${what}: ${value}`)
  return m[1] || ''
}
const tokenId = (token) => token.split('_')[1]

const ok = (what) => console.log(`ok - ${what}`)
function assert (cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`)
  ok(what)
}

async function rest (method, p, body, token = TOKEN) {
  const headers = { Authorization: `Bearer ${token}` }
  if (body) headers['Content-Type'] = 'application/json'
  const r = await fetch(`${BASE}/api${p}`, { method, headers, body: body ? JSON.stringify(body) : undefined })
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`)
  return r.status === 204 ? null : r.json()
}

// Console errors, by phase: while the server is up and the input is good there must be none.
const consoleErrors = []
let phase = 'normal'
// Every URL the pages asked for (HTTP and websockets): a token must never be in one.
const urlsSeen = []
function watch (page, name) {
  page.on('request', (request) => urlsSeen.push(request.url()))
  page.on('websocket', (socket) => urlsSeen.push(socket.url()))
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push({ phase, name, text: msg.text() }) })
  page.on('pageerror', (err) => consoleErrors.push({ phase, name, text: `pageerror: ${err.message}` }))
  return page
}

const WIDE = { width: 1280, height: 800 }
const NARROW = { width: 360, height: 740 }

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

// A wide and a narrow page of two people, both signed in.
async function signedInPair (browser, [wideName, wideColor], [narrowName, narrowColor]) {
  const wide = await newPage(browser, wideName, wideColor, WIDE)
  const narrow = await newPage(browser, narrowName, narrowColor, NARROW)
  await signIn(wide.page)
  await signIn(narrow.page)
  return [wide, narrow]
}

// Open the sign-in link: the page keeps the token and takes it out of the address bar.
async function signIn (page, link = START_URL) {
  await page.goto(link)
  await page.locator('#signed-in').waitFor({ timeout: T })
}
const storedToken = (page) => page.evaluate(() => localStorage.getItem('coscribe.token'))

const crdtText = (page) => page.evaluate(() => window.coscribe.text())
async function waitText (page, pred, what, arg = null) {
  await page.waitForFunction(pred, arg, { timeout: T, polling: 100 }).catch(async () => {
    throw new Error(`FAILED: ${what}; text is ${JSON.stringify(await crdtText(page))}`)
  })
  ok(what)
}
const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true })
// The page at 1280 and at 360 px wide (`NAME-1280.png`, `NAME-360.png`), then as it was.
async function shots (page, name) {
  const size = page.viewportSize()
  for (const width of [1280, 360]) {
    await page.setViewportSize({ width, height: width > 400 ? 800 : 740 })
    await page.waitForTimeout(150)
    await shot(page, `${name}-${width}`)
  }
  await page.setViewportSize(size)
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
async function typeAll (page, text) {
  await page.locator('.cm-content').click()
  await page.keyboard.press('Control+a')
  await page.keyboard.type(text)
}
async function selectVersion (page, text) {
  await page.locator('.version', { hasText: text }).first().click()
  await page.locator('#version-view').waitFor({ timeout: T })
}
async function restoreSelected (page) {
  await page.locator('#restore').click()
  await page.locator('#restore-yes').click()
}

async function main () {
  // Assets: hashed names, long cache, gzip; index.html no-cache.
  const index = await fetch(`${BASE}/`, { headers: { 'Accept-Encoding': 'gzip' } })
  assert(index.status === 200 && index.headers.get('cache-control') === 'no-cache', '/ is served with Cache-Control: no-cache')
  const html = await index.text()
  const assets = [...html.matchAll(/\/assets\/[\w.-]+\.(?:js|css)/g)].map((m) => m[0])
  assert(assets.length >= 2 && assets.every((a) => /-[\w-]{8,}\.(js|css)$/.test(a)), `assets have hashed names: ${assets.join(', ')}`)
  const js = await fetch(`${BASE}${assets.find((a) => a.endsWith('.js'))}`, { headers: { 'Accept-Encoding': 'gzip' } })
  assert(js.headers.get('cache-control').includes('max-age=31536000') && js.headers.get('content-encoding') === 'gzip', 'assets are gzip-compressed with a one-year cache')

  // Two lines, so that the two people start typing in different places: two carets at the
  // same spot of an empty note would push each other along (a CodeMirror mapping, not a merge).
  const note = await rest('POST', '/notes', { title: 'E2E shared note', text: '\n' })
  const url = `${BASE}/#/note/${note.id}`
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  try {
    const A = await newPage(browser, 'Alice', '#1971c2', WIDE)
    const B = await newPage(browser, 'Bob', '#c2255c', NARROW)
    const a = A.page
    const b = B.page

    // Both open the link `coscribe serve` printed; the token leaves the address bar.
    await signIn(a)
    assert(a.url() === `${BASE}/`, `the token is taken out of the address bar (${a.url().replace(TOKEN, 'TOKEN')})`)
    assert((await storedToken(a)) === TOKEN, 'the page keeps the token in localStorage')
    await signIn(b)

    // The workspace lists the note with its title.
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
      (async () => { await a.locator('.cm-content').click(); await a.keyboard.press('Control+Home'); await a.keyboard.type('Alice writes apples. ', { delay: 15 }) })(),
      (async () => { await b.locator('.cm-content').click(); await b.keyboard.press('Control+End'); await b.keyboard.type('Bob writes bananas. ', { delay: 15 }) })(),
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
    await a.locator('.version', { hasText: 'Saved by Alice, with Bob in the note' }).waitFor({ timeout: T })
    ok('a saved version is listed in the history panel, with who was in the note')
    const versionText = await crdtText(a)
    await a.locator('.cm-content').click()
    await a.keyboard.press('Control+End')
    await a.keyboard.type(' Later words.')
    await waitText(b, () => (window.coscribe.text() || '').includes('Later words.'), 'later edit reaches page B')
    await a.locator('.version', { hasText: 'Saved by Alice' }).first().click()
    await a.locator('#version-diff').waitFor({ timeout: T })
    assert((await a.locator('#version-text').textContent()) === versionText, 'selecting a version shows its text')
    assert((await a.locator('#version-diff .diff-del').innerText()).includes('Later words.'), 'the diff shows what the current text has and the version has not')
    assert((await a.locator('#version-summary').textContent()).includes('only in'), `the diff is summed up in words: "${await a.locator('#version-summary').textContent()}"`)
    await shots(a, 'history-diff')
    await a.locator('#restore').click()
    await a.locator('#restore-confirm').waitFor({ timeout: T })
    assert((await crdtText(b)).includes('Later words.'), 'restore asks for confirmation before changing anything')
    await a.locator('#restore-yes').click()
    await waitText(b, () => !(window.coscribe.text() || '').includes('Later words.'), 'restore puts the version back for page B')
    assert((await crdtText(b)) === versionText && (await crdtText(a)) === versionText, 'both pages hold the restored text')
    await a.locator('.version', { hasText: 'Before Alice restored the version of' }).waitFor({ timeout: T })
    ok('the text from before the restore is kept as a version')
    await restoreAndUndo(a, b, note)
    await rest('PUT', `/notes/${note.id}/text`, { text: versionText })
    await waitText(a, (t) => window.coscribe.text() === t, 'the note is back to the shared text', versionText)
    await waitText(b, (t) => window.coscribe.text() === t, 'page B too', versionText)

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

    await markdownChecks(browser)
    await presenceChecks(browser, url)
    await workspaceChecks(browser, a)
    await trashChecks(browser, a)
    await sharingChecks(browser, a)
    await liveListChecks(browser)
    await searchChecks(browser)
    await a.evaluate((u) => { location.hash = u }, `#/note/${note.id}`)
    await a.locator('.cm-content').waitFor({ timeout: T })
    await a.waitForFunction(() => window.coscribe.synced(), null, { timeout: T })
    assert(consoleErrors.filter((e) => e.phase === 'normal').length === 0, `no console errors in normal use ${JSON.stringify(consoleErrors)}`)

    // Bad input: an unknown id, a deleted note; no empty editor is shown as if it were the note.
    phase = 'bad-input'
    const C = await newPage(browser, 'Carol', '#2b8a3e', WIDE)
    await signIn(C.page)
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
    await C.page.goto(`${url}/version/999999`)
    await C.page.locator('#note-banner', { hasText: 'no longer exists' }).waitFor({ timeout: T })
    assert(await C.page.locator('.cm-content').isVisible(), 'a version that no longer exists says so and the note stays open')
    await shots(C.page, 'version-gone')
    await corruptCopyChecks(browser)
    await C.context.close()

    await accessChecks(browser, note, a)

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
    const D = await newPage(browser, 'Dan', '#e8590c', NARROW)
    await D.page.goto(`${BASE}/`).catch(() => {})
    const E = await newPage(browser, 'Eve', '#5f3dc4', WIDE)
    await askHarness('start-server')
    phase = 'server-back'
    await a.locator('#status[data-state="connected"]').waitFor({ timeout: 30000 })
    ok('page A reconnects when the server is back')
    await a.waitForFunction(() => window.coscribe.live(), null, { timeout: T, polling: 100 })
    const afterRestart = await rest('POST', '/notes', { title: 'Made after the restart' })
    await a.locator(`.note-link[data-id="${afterRestart.id}"]`).waitFor({ timeout: 3000 })
    ok('and its notes list follows the change feed again')
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
    await signIn(E.page)
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
    await offlineReloadChecks(browser, note, a)
    await A.context.close()
  } finally {
    await browser.close()
  }
  const noisy = consoleErrors.filter((e) => e.phase === 'normal')
  assert(noisy.length === 0, 'no console errors outside the bad-input, access and server-down phases')
  // Refused requests show up as "Failed to load resource: ... 401/403" (Chromium's network log),
  // nothing else: no exception, no other error.
  const odd = consoleErrors.filter((e) => e.phase === 'access' && !/^Failed to load resource: the server responded with a status of 40[13]/.test(e.text))
  assert(odd.length === 0, `only refused requests in the console during the access checks ${JSON.stringify(odd)}`)
  const leaks = urlsSeen.filter((u) => u.includes('token=') || u.includes(TOKEN) || /cs_[0-9a-f]{16}_/.test(u))
  assert(leaks.length === 0, `no URL the pages asked for holds a token (${urlsSeen.length} requests and sockets) ${JSON.stringify(leaks)}`)
  assert(urlsSeen.some((u) => u.startsWith('ws')), 'the pages used websockets (their token rides in the bearer subprotocol)')
  console.log(`screenshots in ${OUT}`)
}

// Tokens: none, an editor's pasted then revoked, a viewer's, another workspace's.
async function accessChecks (browser, note, a) {
  phase = 'access'
  const url = `${BASE}/#/note/${note.id}`
  const noteText = await crdtText(a)
  const gone = async (page, what) => {
    assert((await page.locator('.cm-content').count()) === 0 && !(await page.locator('#note').isVisible()), `${what}: no editor is shown`)
    assert(!(await page.locator('#notes').isVisible()), `${what}: no notes list is shown`)
  }

  // (a) No token at all: the page says access is refused and how to go on; no editor.
  const F = await newPage(browser, 'Frank', '#0c8599', NARROW)
  const f = F.page
  await f.goto(url)
  await f.locator('#access', { hasText: 'Access refused' }).waitFor({ timeout: T })
  ok(`a page without a token says "${await f.locator('#access-title').textContent()}"`)
  await gone(f, 'without a token')
  const help = await f.locator('#access').innerText()
  assert(help.includes('coscribe token create') && help.includes('#token=') && (await f.locator('#token-input').isVisible()),
    'it says how to go on: paste a token, the #token= link, coscribe token create')
  assert((await f.locator('#status').textContent()) === 'Access refused', 'the top bar says "Access refused"')
  const width = await f.evaluate(() => document.documentElement.scrollWidth)
  assert(width <= 360, `the access page fits 360 px wide (scrollWidth ${width})`)
  await shot(f, 'no-token')

  // Pasting an editor token opens the note the address asked for, editable.
  const editor = await askHarness('token-create editor default')
  await f.locator('#token-input').fill(editor)
  await f.locator('#token-submit').click()
  await waitText(f, (t) => window.coscribe.text() === t, 'a pasted editor token opens the note', noteText)
  await f.locator('.cm-content[contenteditable="true"]').waitFor({ timeout: T })
  assert(!(await f.evaluate(() => window.coscribe.readOnly())) && !(await f.locator('#readonly').isVisible()), 'an editor token is not read-only')
  await f.locator('.cm-content').click()
  await f.keyboard.press('Control+End')
  await f.keyboard.type(' Frank edits.')
  await waitText(a, () => (window.coscribe.text() || '').includes('Frank edits.'), 'the editor token\'s edit reaches page A')

  // (b) Revoking that token closes the open page's socket (4401): it says so within seconds.
  const revokedAt = Date.now()
  await askHarness(`token-revoke ${tokenId(editor)}`)
  await f.locator('#access', { hasText: 'no longer works' }).waitFor({ timeout: 8000 })
  ok(`after \`coscribe token revoke\` the open page shows access refused (${Date.now() - revokedAt} ms)`)
  await f.locator('.cm-content').waitFor({ state: 'detached', timeout: T })
  await gone(f, 'after the revocation')
  await shot(f, 'token-revoked')
  const kept = async () => (await f.evaluate(() => indexedDB.databases())).filter((d) => d.name.startsWith('coscribe-note-')).length
  assert((await kept()) > 0, 'the browser kept the note it opened for offline work')
  await f.locator('#forget-token').click()
  await f.locator('#access-title', { hasText: 'Signed out' }).waitFor({ timeout: T })
  assert((await storedToken(f)) === null, '"Forget the stored token" removes it from localStorage')
  for (const deadline = Date.now() + T; (await kept()) && Date.now() < deadline;) await sleep(100)
  assert((await kept()) === 0, 'and the notes kept in the browser for offline work')
  // The printed link opened in this already open page (only the fragment changes): signed in.
  await f.evaluate((link) => { location.href = link }, START_URL)
  await f.locator('.note-link').first().waitFor({ timeout: T })
  assert(f.url() === `${BASE}/` && (await storedToken(f)) === TOKEN, 'opening the #token= link in an open page signs it in and cleans the address bar')
  await F.context.close()

  // A viewer token, given with the route (`#/note/ID&token=`): read-only, says so, edits nothing.
  const viewer = await askHarness('token-create viewer default')
  const V = await newPage(browser, 'Vera', '#9c36b5', WIDE)
  const v = V.page
  await v.goto(`${url}&token=${viewer}`)
  await waitText(v, () => (window.coscribe.text() || '').includes('Frank edits.'), 'a viewer token opens the note')
  assert(v.url() === url, 'the token leaves the address bar, the route stays')
  await v.locator('#readonly').waitFor({ timeout: T })
  assert((await v.locator('.cm-content').getAttribute('contenteditable')) === 'false', 'a viewer\'s editor is read-only')
  assert((await v.locator('#status').textContent()).includes('read-only'), `the top bar says "${await v.locator('#status').textContent()}"`)
  assert(await v.locator('#rename').isDisabled() && await v.locator('#delete').isDisabled() && await v.locator('#new-note').isDisabled(), 'rename, delete and new note are disabled')
  const before = await crdtText(v)
  await v.locator('.cm-content').click()
  await v.keyboard.type('Vera tries to write.')
  await new Promise((resolve) => setTimeout(resolve, 500))
  assert((await crdtText(v)) === before, 'typing in the viewer\'s editor changes nothing')
  await a.locator('#presence li', { hasText: 'Vera' }).waitFor({ timeout: T })
  ok('the viewer is listed in page A\'s presence list')
  await a.locator('.cm-content').click()
  await a.keyboard.press('Control+End')
  await a.keyboard.type(' Seen by Vera.')
  await waitText(v, () => (window.coscribe.text() || '').includes('Seen by Vera.'), 'the viewer follows others\' edits live')
  assert(!JSON.stringify(await rest('GET', `/notes/${note.id}/content`)).includes('Vera tries'), 'nothing the viewer typed reached the server')
  await shot(v, 'viewer-read-only')
  await V.context.close()

  // A token of another workspace: the note is refused (403), and its list holds none of ours.
  await rest('POST', '/workspaces', { slug: 'e2e-other', name: 'Other team' })
  const other = await askHarness('token-create editor e2e-other')
  const O = await newPage(browser, 'Olga', '#e8590c', WIDE)
  await O.page.goto(`${url}&token=${other}`)
  await O.page.locator('#problem', { hasText: 'does not give access' }).waitFor({ timeout: T })
  assert(!(await O.page.locator('#note').isVisible()), 'a token of another workspace is told it has no access to the note, no editor')
  await O.page.locator('.notes .empty').waitFor({ timeout: T })
  assert((await O.page.locator('.note-link').count()) === 0, 'its notes list shows none of the default workspace\'s notes')
  await shot(O.page, 'other-workspace')
  await O.context.close()
}

// The case: a restore, then Ctrl+Z, alone and with a second person typing.
async function restoreAndUndo (a, b, note) {
  const FOX = 'The quick brown fox jumps over the lazy dog.'
  const LATER = 'Completely different text, typed later.'
  const same = (page, text, what) => waitText(page, (t) => window.coscribe.text() === t, what, text)
  await typeAll(a, FOX)
  await same(b, FOX, 'page B holds the first sentence')
  await a.locator('#save-version').click()
  let vid = null
  for (const deadline = Date.now() + T; !vid && Date.now() < deadline; await sleep(200)) {
    const top = (await rest('GET', `/notes/${note.id}/versions?limit=1`)).items[0]
    if (top && (await rest('GET', `/notes/${note.id}/versions/${top.id}`)).text === FOX) vid = top.id
  }
  assert(vid, 'the version of the first sentence is saved')
  await typeAll(a, LATER)
  await same(b, LATER, 'page B holds the sentence typed later')
  await a.locator(`.version[data-version-id="${vid}"]`).click()
  await restoreSelected(a)
  await same(a, FOX, 'restoring brings the first sentence back, whole')
  await same(b, FOX, 'page B sees the restored sentence, whole')
  await a.keyboard.press('Control+z')
  await same(a, LATER, 'Ctrl+Z right after the restore gives exactly the text from before it')
  await same(b, LATER, 'page B sees the undone restore')
  const versions = (await rest('GET', `/notes/${note.id}/versions?limit=5`)).items
  const kept = versions.find((v) => (v.label || '').startsWith('Before Alice restored'))
  assert(kept && (await rest('GET', `/notes/${note.id}/versions/${kept.id}`)).text === LATER, 'the version kept before the restore holds the text from before it')
  await shots(a, 'history-after-undo')

  // Again, while Bob types at the end of the note at the same moment.
  await a.locator(`.version[data-version-id="${vid}"]`).click()
  await a.locator('#restore').click()
  await b.locator('.cm-content').click()
  await b.keyboard.press('Control+End')
  const typed = ' Hello from B.'
  await Promise.all([
    b.keyboard.type(typed, { delay: 40 }),
    (async () => { await sleep(150); await a.locator('#restore-yes').click() })(),
  ])
  await waitText(a, (fox) => (window.coscribe.text() || '').includes(fox), 'with Bob typing, the restored sentence is whole in page A', FOX)
  const settled = async () => {
    for (const deadline = Date.now() + T; Date.now() < deadline; await sleep(200)) {
      const [ta, tb] = [await crdtText(a), await crdtText(b)]
      if (ta === tb) return ta
    }
    throw new Error('FAILED: pages A and B do not converge')
  }
  const mixed = await settled()
  const rest_ = mixed.replace(FOX, '')
  const count = (text) => [...text].reduce((m, c) => m.set(c, (m.get(c) || 0) + 1), new Map())
  const mine = count(typed)
  assert(mixed.includes(FOX) && [...count(rest_)].every(([c, n]) => n <= (mine.get(c) || 0)),
    `no letter of the newer text is left inside or beside the restored one: only Bob's (${JSON.stringify(mixed)})`)
  await a.keyboard.press('Control+z')
  await waitText(a, (later) => (window.coscribe.text() || '').includes(later), 'Ctrl+Z brings the newer sentence back whole', LATER)
  const undone = await settled()
  assert(!undone.includes(FOX) && undone.includes(LATER), `after Ctrl+Z both pages hold the text from before the restore (${JSON.stringify(undone)})`)
}

// Markdown: highlighted in the editor, rendered and sanitized in the preview, live; side by
// side at 1280 px, a toggle at 360 px.
async function markdownChecks (browser) {
  const md = await rest('POST', '/notes', {
    title: 'Markdown',
    text: '# Plan\n\nSome **bold** words and a [link](https://example.com).\n\n<img src=x onerror="window.__xss=1">\n\n[bad](javascript:window.__xss=2)\n',
  })
  const [W, P] = await signedInPair(browser, ['Wanda', '#3cb44b'], ['Pia', '#f58231'])
  const w = W.page
  const p = P.page
  await w.goto(`${BASE}/#/note/${md.id}`)
  await w.locator('#preview h1', { hasText: 'Plan' }).waitFor({ timeout: T })
  ok('the preview renders the Markdown beside the editor at 1280 px')
  assert(await w.locator('.editor-wrap').isVisible() && await w.locator('#preview').isVisible(), 'editor and preview are side by side')
  assert((await w.locator('#preview strong').textContent()) === 'bold' && (await w.locator('#preview a[href="https://example.com"]').count()) === 1, 'bold text and links are rendered')
  assert((await w.locator('#preview img').count()) === 0 && (await w.locator('#preview a[href^="javascript"]').count()) === 0 && !(await w.evaluate(() => window.__xss)), 'raw HTML and javascript: links are not rendered (sanitized)')
  await w.locator('.cm-line', { hasText: 'Plan' }).locator('span').first().waitFor({ timeout: T })
  ok('the editor highlights Markdown (the heading is styled)')
  await w.locator('.cm-content').click()
  await w.keyboard.press('Control+End')
  await w.keyboard.type('\n## Added live\n')
  await w.locator('#preview h2', { hasText: 'Added live' }).waitFor({ timeout: T })
  ok('the preview follows the text as it is typed')
  await shots(w, 'markdown')
  await p.goto(`${BASE}/#/note/${md.id}`)
  await p.locator('#preview h2', { hasText: 'Added live' }).waitFor({ state: 'attached', timeout: T }).catch(() => {})
  await p.locator('.cm-content').waitFor({ timeout: T })
  assert(!(await p.locator('#preview').isVisible()), 'at 360 px the editor shows alone')
  await p.locator('#toggle-preview').click()
  await p.locator('#preview h2', { hasText: 'Added live' }).waitFor({ timeout: T })
  assert(!(await p.locator('.editor-wrap').isVisible()), 'the toggle shows the preview instead of the editor on a phone')
  await shot(p, 'markdown-preview-360')
  await w.locator('.cm-content').click()
  await w.keyboard.press('Control+End')
  await w.keyboard.type('\n- typed by Wanda\n')
  await p.locator('#preview li', { hasText: 'typed by Wanda' }).waitFor({ timeout: T })
  ok('the other person\'s preview follows what is typed in the first page')
  await p.locator('#toggle-preview').click()
  await p.locator('.cm-content').waitFor({ timeout: T })
  ok('and back to the editor')
  await W.context.close()
  await P.context.close()
}

// Presence: people who picked the same colour are shown in distinct ones; the title box is
// usable at 360 px.
async function presenceChecks (browser, url) {
  const pages = []
  for (const [i, name] of ['Ann', 'Ben', 'Cat', 'Dov'].entries()) {
    const X = await newPage(browser, name, '#e6194b', i ? WIDE : NARROW)
    await signIn(X.page)
    await X.page.goto(url)
    await X.page.locator('.cm-content').waitFor({ timeout: T })
    pages.push(X)
  }
  const first = pages[0].page
  await first.waitForFunction(() => document.querySelectorAll('#presence li').length >= 4, null, { timeout: T })
  let colours = []
  for (const deadline = Date.now() + T; Date.now() < deadline; await sleep(200)) {
    colours = await first.evaluate(() => [...document.querySelectorAll('#presence .dot')].map((d) => d.style.background))
    if (colours.length >= 4 && new Set(colours).size === colours.length) break
  }
  assert(colours.length >= 4 && new Set(colours).size === colours.length, `four people who all picked the same colour are shown in distinct colours (${colours.join(', ')})`)
  const box = await first.locator('#title').boundingBox()
  assert(box && box.width >= 300, `the title box is usable at 360 px (${box && Math.round(box.width)} px wide)`)
  await shot(first, 'presence-colours-360')
  await shot(pages[1].page, 'presence-colours-1280')
  for (const X of pages) await X.context.close()
}

// Workspaces: an admin switches between them; the list pages through every note; an editor
// sees its own workspace only, and one it cannot reach says so.
async function workspaceChecks (browser, a) {
  const ws = await rest('POST', '/workspaces', { slug: 'e2e-many', name: 'Many notes' })
  const total = 205
  for (let i = 0; i < total; i += 25) {
    await Promise.all(Array.from({ length: Math.min(25, total - i) }, (_, j) => rest('POST', '/notes', { workspace_id: ws.id, title: `Many ${i + j}` })))
  }
  await a.evaluate(() => { location.hash = '#/' })
  await a.locator('#workspace').focus()
  await a.locator(`#workspace option[value="${ws.id}"]`).waitFor({ state: 'attached', timeout: T })
  await a.locator('#workspace').selectOption(ws.id)
  await a.locator('#list-count', { hasText: `${total} notes` }).waitFor({ timeout: T })
  assert((await a.locator('.note-link').count()) === total, `an admin switches to another workspace and its list holds all ${total} notes (more than one page)`)
  await shots(a, 'workspace-switch')
  await a.locator('#workspace').selectOption('default')
  await a.locator('.note-link', { hasText: 'E2E shared note' }).or(a.locator('.note-link', { hasText: 'Renamed in the browser' })).first().waitFor({ timeout: T })
  ok('and back to the default workspace')

  const editor = await askHarness('token-create editor e2e-many')
  const E = await newPage(browser, 'Ed', '#4363d8', WIDE)
  await E.page.goto(`${BASE}/#token=${editor}`)
  await E.page.locator('#list-count', { hasText: `${total} notes` }).waitFor({ timeout: T })
  assert(!(await E.page.locator('#workspace').isVisible()) && (await E.page.locator('#workspace-name').textContent()) === 'Many notes', 'an editor sees its own workspace, named, with no way to switch')
  phase = 'bad-input'
  await E.page.evaluate(() => { location.hash = '#/workspace/default' })
  await E.page.locator('#problem', { hasText: 'No access to this workspace' }).waitFor({ timeout: T })
  ok('a workspace the token cannot reach says so')
  await shots(E.page, 'workspace-no-access')
  await E.page.locator('#problem button', { hasText: 'Show my workspace' }).click()
  await E.page.locator('#welcome').waitFor({ timeout: T })
  assert((await E.page.locator('.note-link').count()) === total, 'and offers a way on: back to its own workspace')
  await E.context.close()
  phase = 'normal'
}

// Trash: a deleted note is listed there and comes back with Undelete.
async function trashChecks (browser, a) {
  const doomed = await rest('POST', '/notes', { title: 'Trash me', text: 'kept in the trash' })
  await rest('DELETE', `/notes/${doomed.id}`)
  await a.evaluate(() => { location.hash = '#/' })
  await a.locator('#show-trash').click()
  const row = a.locator('.trashed', { hasText: 'Trash me' })
  await row.waitFor({ timeout: T })
  ok('the trash lists a deleted note')
  await shots(a, 'trash')
  await row.locator('.undelete').click()
  await waitText(a, () => window.coscribe.text() === 'kept in the trash', 'Undelete brings it back and opens it')
  assert((await rest('GET', `/notes/${doomed.id}`)).deleted_at === null, 'the note is no longer deleted on the server')
  await a.locator('.note-link', { hasText: 'Trash me' }).waitFor({ timeout: T })
  ok('and it is in the notes list again')

  // Two people: one deletes the note the other has open; the other finds it in the trash.
  const U = await newPage(browser, 'Uma', '#f032e6', NARROW)
  const u = U.page
  await signIn(u)
  await u.goto(`${BASE}/#/note/${doomed.id}`)
  await waitText(u, () => window.coscribe.text() === 'kept in the trash', 'a second page opens the same note')
  a.once('dialog', (dialog) => dialog.accept())
  await a.locator('#delete').click()
  await u.locator('#problem', { hasText: 'was deleted' }).waitFor({ timeout: T })
  ok('deleting it in one page tells the other it was deleted')
  await u.locator('#menu').click()
  await u.locator('#show-trash').click()
  await u.locator('.trashed', { hasText: 'Trash me' }).locator('.undelete').click()
  await waitText(u, () => window.coscribe.text() === 'kept in the trash', 'the other page undeletes it from its trash and has it open again')
  await shots(u, 'trash-undeleted-360')
  await U.context.close()
}

// Sharing: an admin makes a viewer link, it signs a new browser in read-only; revoked, it no
// longer works and the page says so.
async function sharingChecks (browser, a) {
  await a.evaluate(() => { location.hash = '#/' })
  await a.locator('#open-sharing').click()
  await a.locator('#sharing').waitFor({ timeout: T })
  await a.locator('#share-name').fill('Ann the reader')
  await a.locator('#share-role').selectOption('viewer')
  await a.locator('#share-create').click()
  await a.locator('#share-made').waitFor({ timeout: T })
  const link = await a.locator('#share-link').inputValue()
  assert(link.startsWith(`${BASE}/#token=cs_`), 'the admin gets a share link')
  await a.locator('.share-item', { hasText: 'Ann the reader' }).waitFor({ timeout: T })
  ok('the link is listed with who it is for')
  await shots(a, 'sharing')
  const R = await newPage(browser, 'Ann', '#911eb4', NARROW)
  await R.page.goto(link)
  await R.page.locator('.note-link').first().waitFor({ timeout: T })
  await R.page.locator('#new-note:disabled').waitFor({ timeout: T })
  ok('the link signs a new browser in, read-only')
  await R.context.close()
  phase = 'access'
  await a.locator('.share-item', { hasText: 'Ann the reader' }).locator('button', { hasText: 'Revoke' }).click()
  await a.locator('.share-item', { hasText: 'Ann the reader' }).waitFor({ state: 'detached', timeout: T })
  ok('revoking takes the link off the list')
  const S = await newPage(browser, 'Sam', '#0f9fb8', WIDE)
  await S.page.goto(link)
  await S.page.locator('#access', { hasText: 'the token was not accepted' }).waitFor({ timeout: T })
  assert((await S.page.locator('#access').innerText()).includes('share link'), 'a revoked share link says the token was not accepted and how to go on')
  await shots(S.page, 'share-link-revoked')
  await S.context.close()
  phase = 'normal'
  await a.locator('#close-sharing').click()
}

// The notes list is live: what one page creates, renames, deletes and undeletes shows in the
// other page's list within a second, without a reload (the change feed, GET /api/events read
// with fetch, so the token stays in a header); the open note's title follows a rename. A page
// that cannot open the feed says so and falls back to refreshing the list.
async function liveListChecks (browser) {
  const [L, M] = await signedInPair(browser, ['Lea', '#1971c2'], ['Max', '#c2255c'])
  const l = L.page
  const m = M.page
  for (const p of [l, m]) await p.waitForFunction(() => window.coscribe.live(), null, { timeout: T, polling: 50 })
  ok('both pages follow the change feed')
  assert(!(await m.locator('#live-state').isVisible()), 'a live list shows no "paused" notice')
  assert(!(await m.evaluate(() => window.coscribe.polling())) && !(await l.evaluate(() => window.coscribe.polling())), 'and is not polled')
  const within = async (what, since, locator, state = 'visible') => {
    await locator.waitFor({ state, timeout: T })
    const took = Date.now() - since
    assert(took <= 1000, `${what}, within a second (${took} ms after the server answered page A)`)
  }
  // Page A's own request, answered: from then on the other page has a second.
  const answered = (method, pathname, click) => Promise.all([
    l.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname === pathname, { timeout: T }),
    click(),
  ]).then(([response]) => response)

  const response = await answered('POST', '/api/notes', () => l.locator('#new-note').click())
  let since = Date.now()
  const created = await response.json()
  const row = m.locator(`.note-link[data-id="${created.id}"]`)
  await within('a note created in page A shows in page B\'s list', since, row)
  await l.locator('.cm-content').waitFor({ timeout: T })
  await l.locator('#title').fill('Live from Lea')
  await answered('PATCH', `/api/notes/${created.id}`, () => l.locator('#rename').click())
  since = Date.now()
  await within('renamed in page A, it shows the new title in page B', since, row.filter({ hasText: 'Live from Lea' }))
  assert((await m.locator('.note-link').first().getAttribute('data-id')) === created.id, 'and it is first in the list (most recently changed)')
  await shots(m, 'live-list')
  l.once('dialog', (dialog) => dialog.accept())
  await answered('DELETE', `/api/notes/${created.id}`, () => l.locator('#delete').click())
  since = Date.now()
  await within('deleted in page A, it leaves page B\'s list', since, row, 'detached')
  await rest('POST', `/notes/${created.id}/undelete`)
  since = Date.now()
  await within('undeleted by another client, it is back in page B\'s list', since, row)

  // The open note's title follows a rename made elsewhere.
  await row.click()
  await m.locator('.cm-content').waitFor({ timeout: T })
  await rest('PATCH', `/notes/${created.id}`, { title: 'Renamed by someone else' })
  since = Date.now()
  await m.waitForFunction(() => document.getElementById('title').value === 'Renamed by someone else', null, { timeout: T, polling: 50 })
  assert(Date.now() - since <= 1000, `the open note's title box follows a rename made elsewhere (${Date.now() - since} ms)`)
  await L.context.close()
  await M.context.close()

  // A page whose change feed cannot be opened says so and refreshes the list on a timer.
  phase = 'bad-input'
  const N = await newPage(browser, 'Nia', '#2b8a3e', WIDE)
  await N.context.route('**/api/events**', (route) => route.fulfill({
    status: 404, contentType: 'application/problem+json', body: JSON.stringify({ status: 404, detail: 'no change feed here' }),
  }))
  await signIn(N.page)
  await N.page.locator('#live-state', { hasText: 'Live updates are paused (HTTP 404: no change feed here)' }).waitFor({ timeout: T })
  assert((await N.page.locator('#live-state').textContent()).includes('refreshed every 15 s'), 'a page that cannot open the change feed says so, and that it refreshes the list every 15 s')
  await N.page.locator('.note-link').first().waitFor({ timeout: T })
  assert(await N.page.evaluate(() => window.coscribe.polling()), 'and still lists the notes, polling for changes')
  await shots(N.page, 'live-unavailable')
  await N.context.close()
  phase = 'normal'
}

// Search: a word typed in a note is found from another page, shown in a snippet with the match
// marked (built as text, never as HTML); opening the hit selects the match in the editor.
// Bad input: an empty query asks nothing, a refused one shows the server's detail, a hit whose
// note was deleted since says so with a way on.
async function searchChecks (browser) {
  const trip = await rest('POST', '/notes', { title: 'Trip plans', text: 'Packing list.\n' + 'Another line of the list.\n'.repeat(60) })
  const html = await rest('POST', '/notes', { title: 'Markup <b>test</b>', text: 'Some <img src=x onerror="window.__xss=3"> periscope markup.' })
  const [S, U] = await signedInPair(browser, ['Sue', '#1971c2'], ['Tom', '#c2255c'])
  const s = S.page
  const t = U.page
  // Sue types a sentence at the end of a long note.
  await s.goto(`${BASE}/#/note/${trip.id}`)
  await s.locator('.cm-content').waitFor({ timeout: T })
  await s.locator('.cm-content').click()
  await s.keyboard.press('Control+End')
  await s.keyboard.type('Remember the periscope for the boat.')
  await waitText(s, () => (window.coscribe.text() || '').includes('periscope for the boat.'), 'page A types a word in a note')
  for (const deadline = Date.now() + T; Date.now() < deadline; await sleep(200)) {
    const found = await rest('GET', '/search?q=periscope&workspace_id=default')
    // Indexed up to the last word typed (the index follows edits within about half a second).
    if (found.items.some((hit) => hit.note_id === trip.id && hit.snippet.includes('for the boat.'))) break
  }

  // Tom searches for it.
  const searches = []
  t.on('request', (request) => { if (new URL(request.url()).pathname === '/api/search') searches.push(request.url()) })
  await t.locator('#search-input').fill('periscope')
  const hit = t.locator('.search-hit', { hasText: 'Trip plans' })
  await hit.waitFor({ timeout: T })
  ok('page B\'s search finds the word typed in page A')
  assert((await hit.locator('.hit-snippet mark').first().textContent()) === 'periscope', 'the snippet marks the matched word')
  assert((await hit.locator('.hit-snippet').textContent()).includes('Remember the periscope for the boat.'), `the snippet shows the text around it ("${await hit.locator('.hit-snippet').textContent()}")`)
  const markup = t.locator('.search-hit', { hasText: 'Markup' })
  await markup.waitFor({ timeout: T })
  assert((await markup.locator('.hit-snippet').textContent()).includes('<img src=x') && (await t.locator('.search-hit img, .search-hit b').count()) === 0 && !(await t.evaluate(() => window.__xss)),
    'a snippet or title holding HTML is shown as text, never run')
  assert((await t.locator('#search-summary').textContent()).includes('2 notes match'), `the results are counted ("${await t.locator('#search-summary').textContent()}")`)
  await shots(t, 'search-results')
  await hit.locator('.hit-link').click()
  await t.waitForFunction(() => window.coscribe.selection() === 'periscope', null, { timeout: T, polling: 100 })
  ok('opening the hit opens the note with the match selected')
  const line = await t.locator('.cm-line', { hasText: 'Remember the periscope' }).boundingBox()
  const view = t.viewportSize()
  assert(line && line.y >= 0 && line.y + line.height <= view.height, `and scrolled into view (line at y=${line && Math.round(line.y)})`)
  await shots(t, 'search-opened-at-match')

  // Bad input.
  phase = 'bad-input'
  await t.evaluate(() => { location.hash = '#/' })
  await t.locator('#search-results').waitFor({ timeout: T })
  const asked = searches.length
  await t.locator('#search-input').fill('   ')
  await t.locator('#search-input').press('Enter')
  await sleep(500)
  assert(searches.length === asked, 'an empty query sends no request')
  await t.locator('#search-input').fill('!!!')
  await t.locator('#search-error', { hasText: 'no words to search for' }).waitFor({ timeout: T })
  ok(`a query the server refuses shows its detail: "${await t.locator('#search-error').textContent()}"`)
  await shots(t, 'search-refused')
  await t.locator('#search-input').fill('periscope')
  await t.locator('.search-hit', { hasText: 'Markup' }).waitFor({ timeout: T })
  await rest('DELETE', `/notes/${html.id}`)
  await t.locator('.search-hit', { hasText: 'Markup' }).locator('.hit-link').click()
  await t.locator('.hit-problem', { hasText: 'no longer exists' }).waitFor({ timeout: T })
  assert(!(await t.locator('#note').isVisible()), 'a hit whose note was deleted since says so, and opens nothing')
  await shots(t, 'search-hit-gone')
  await t.locator('.hit-problem button', { hasText: 'Look in the trash' }).click()
  await t.locator('.trashed', { hasText: 'Markup' }).waitFor({ timeout: T })
  ok('and offers a way on: the trash, where the note is')
  await rest('POST', `/notes/${html.id}/undelete`)
  await S.context.close()
  await U.context.close()
  phase = 'normal'
}

// Offline across a reload: the page comes back from the browser while the server is down,
// shows the note and what was typed, says it is not saved, and saves it once the server is back.
async function offlineReloadChecks (browser, note, a) {
  const url = `${BASE}/#/note/${note.id}`
  const G = await newPage(browser, 'Gil', '#808000', WIDE)
  const g = G.page
  await signIn(g)
  await g.goto(url)
  await g.locator('.cm-content').waitFor({ timeout: T })
  await g.waitForFunction(() => window.coscribe.offlineReady(), null, { timeout: T, polling: 200 })
  ok('the page and the editor are kept in the browser (service worker)')
  phase = 'server-down-3'
  await askHarness('stop-server')
  await g.locator('#status[data-state="reconnecting"], #status[data-state="offline"]').waitFor({ timeout: T })
  await g.locator('.cm-content').click()
  await g.keyboard.press('Control+End')
  await g.keyboard.type(' Typed before a reload.')
  await g.locator('#offline-banner', { hasText: 'Not saved to the server yet' }).waitFor({ timeout: T })
  ok('typing while the server is down says it is not saved yet')
  await sleep(300)
  await g.reload()
  await waitText(g, () => (window.coscribe.text() || '').includes('Typed before a reload.'), 'reloaded while the server is down, the page shows the note and what was typed')
  await g.locator('#offline-banner', { hasText: 'Not saved to the server yet' }).waitFor({ timeout: T })
  ok('and says it is not saved to the server yet')
  await shots(g, 'offline-after-reload')
  await askHarness('start-server')
  phase = 'server-back-3'
  await g.waitForFunction(() => window.coscribe.saved(), null, { timeout: 30000, polling: 200 })
  await g.locator('#offline-banner').waitFor({ state: 'hidden', timeout: T })
  const stored = await rest('GET', `/notes/${note.id}/content`)
  assert(stored.content.content.includes('Typed before a reload.'), 'once the server is back, what was typed offline is saved there')
  await waitText(a, () => (window.coscribe.text() || '').includes('Typed before a reload.'), 'and another page that has the note open receives it')
  await G.context.close()
}

// A damaged offline copy: a clear message, nothing sent to the server, a way on.
async function corruptCopyChecks (browser) {
  const damaged = await rest('POST', '/notes', { title: 'Damaged copy', text: 'the server\'s text' })
  const H = await newPage(browser, 'Hal', '#000075', WIDE)
  const h = H.page
  await signIn(h)
  await h.goto(`${BASE}/#/note/${damaged.id}`)
  await waitText(h, () => window.coscribe.text() === 'the server\'s text', 'a page opens a note (and keeps a copy)')
  await h.evaluate(() => { location.hash = '#/' })
  await h.locator('#welcome').waitFor({ timeout: T })
  await h.evaluate((name) => new Promise((resolve, reject) => {
    const open = indexedDB.open(name)
    open.onerror = () => reject(open.error)
    open.onsuccess = () => {
      const tx = open.result.transaction(['updates'], 'readwrite')
      tx.objectStore('updates').put(new Uint8Array([1, 2, 3, 250, 250]))
      tx.oncomplete = () => { open.result.close(); resolve() }
      tx.onerror = () => reject(tx.error)
    }
  }), `coscribe-note-${damaged.id}`)
  await h.evaluate((id) => { location.hash = `#/note/${id}` }, damaged.id)
  await h.locator('#problem', { hasText: 'copy of the note is damaged' }).waitFor({ timeout: T })
  assert((await h.locator('#problem').innerText()).includes('unchanged'), 'a damaged copy in the browser is a clear message')
  assert((await rest('GET', `/notes/${damaged.id}/content`)).content.content === 'the server\'s text', 'the note on the server is unchanged')
  await shots(h, 'damaged-offline-copy')
  await h.locator('#problem button', { hasText: 'Open the note from the server' }).click()
  await waitText(h, () => window.coscribe.text() === 'the server\'s text', 'discarding the damaged copy opens the note from the server')
  await H.context.close()
}

main().then(() => { console.log('e2e: all checks passed'); process.exit(0) }, (err) => {
  console.error(err.stack || String(err))
  console.log(JSON.stringify(consoleErrors))
  process.exit(1)
})
