'use strict'
// The chat-room example page (/chat/, served by the porter binary) in headless Chromium from
// Debian's packages, driven by puppeteer-core: two pages join one room, one posts and the other
// sees it; a page that joins later sees the room's history; a direct message; presence turns
// "offline" (the last will) when a page closes. PORTER_UPDATE_SCREENSHOT=1 also writes the
// screenshot to docs/images/chat.png.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const puppeteer = require('puppeteer-core')
const { porterTest, waitFor, REPO_ROOT } = require('./porter')

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium'
// /mqtt exists when the MQTT gateway runs: both on free loopback ports.
const OPTIONS = { http: true, mqtt: true }
const WAIT_MS = 20_000

async function join (browser, porter, name, room) {
  const page = await browser.newPage()
  await page.setViewport({ width: 1000, height: 620 })
  page.on('console', m => porter.clientLog.push(`[chromium ${name}] ${m.type()}: ${m.text()}`))
  page.on('pageerror', e => porter.clientLog.push(`[chromium ${name}] page error: ${e.stack || e}`))
  await page.goto(`${porter.httpUrl}/chat/`, { waitUntil: 'load' })
  // The page remembers the last name (localStorage, shared by the pages of one browser).
  await page.$eval('#name', el => { el.value = '' })
  await page.type('#name', name)
  await page.$eval('#room', (el, room) => { el.value = room }, room)
  await page.click('#join')
  await page.waitForFunction(() => document.getElementById('status').textContent === 'online',
    { timeout: WAIT_MS, polling: 100 })
  return page
}

// Typing and clicking act on the front tab (a background tab's animation frames are throttled).
async function say (page, text) {
  await page.bringToFront()
  await page.type('#text', text)
  await page.click('#send')
}

/// Waits until `page` shows a message with `text` (and, if given, the CSS class `cls`).
function shows (page, text, cls = 'msg') {
  return page.waitForFunction((text, cls) => [...document.querySelectorAll(`#messages .${cls} .text`)]
    .some(el => el.textContent === text), { timeout: WAIT_MS, polling: 100 }, text, cls)
}

function presence (page, user, state) {
  return page.waitForSelector(`#people li[data-user="${user}"][data-state="${state}"]`, { timeout: WAIT_MS })
}

test('two browser pages chat in a room, by direct message, with history and presence', { timeout: 120_000 },
  porterTest(async (t, porter) => {
    if (!fs.existsSync(CHROMIUM)) return t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`)
    const probe = await fetch(`${porter.httpUrl}/mqtt`)
    if (probe.status === 404) return t.skip('this porter has no /mqtt WebSocket endpoint (no MQTT gateway)')
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']
    })
    porter.defer(() => browser.close())

    const ada = await join(browser, porter, 'ada', 'lobby')
    const bob = await join(browser, porter, 'bob', 'lobby')
    await presence(ada, 'bob', 'online')
    await presence(bob, 'ada', 'online')

    // A room message reaches the other page.
    await say(ada, 'hello from ada')
    await shows(bob, 'hello from ada')
    await say(bob, 'hi ada, bob here')
    await shows(ada, 'hi ada, bob here')

    // A page that joins later gets the room's last messages, read from the log (/chat/history).
    const cy = await join(browser, porter, 'cy', 'lobby')
    await shows(cy, 'hello from ada', 'history')
    await shows(cy, 'hi ada, bob here', 'history')

    // A direct message: only its addressee sees it.
    await bob.bringToFront()
    await bob.click('#people li[data-user="ada"]')
    await say(bob, 'psst, ada only')
    await ada.waitForSelector('#people li[data-user="bob"] .unread', { timeout: WAIT_MS })
    await ada.bringToFront()
    await ada.click('#people li[data-user="bob"]')
    await shows(ada, 'psst, ada only')
    await cy.bringToFront()
    await cy.click('#people li[data-user="bob"]')
    const leaked = await cy.$$eval('#messages .msg .text', els => els.map(e => e.textContent))
    assert.ok(!leaked.includes('psst, ada only'), 'the direct message reached a third page')

    // Presence: closing a page publishes its last will ("offline").
    await ada.bringToFront()
    await ada.click('#rooms li[data-room="lobby"]')
    await cy.close()
    await presence(ada, 'cy', 'offline')
    await presence(ada, 'bob', 'online')

    const shot = path.join(porter.tmp, 'chat.png')
    await ada.screenshot({ path: shot })
    if (process.env.PORTER_UPDATE_SCREENSHOT === '1') {
      fs.mkdirSync(path.join(REPO_ROOT, 'docs', 'images'), { recursive: true })
      fs.copyFileSync(shot, path.join(REPO_ROOT, 'docs', 'images', 'chat.png'))
    }
    await waitFor('the screenshot', () => fs.statSync(shot).size > 0)
  }, OPTIONS))
