'use strict'
// The management UI (/, served by the porter binary) in headless Chromium from Debian's packages,
// driven by puppeteer-core, with real clients doing the traffic: one test adds a queue from the
// UI, publishes to it with amqplib, sees the depth change and purges it from the UI; another
// watches a consumer group's lag fall as a kafkajs consumer runs, then produces a test message
// from a topic's page that kafkajs reads and browses the topic's last records. PORTER_UPDATE_SCREENSHOT=1
// also writes a screenshot of every page to docs/images/ui-<page>.png.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const amqplib = require('amqplib')
const puppeteer = require('puppeteer-core')
const { porterTest, kafkaFor, waitFor, REPO_ROOT } = require('./porter')

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium'
const OPTIONS = { http: true }
// The page refreshes every 5 s.
const WAIT_MS = 20_000

async function logIn (porter, t) {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage']
  })
  porter.defer(() => browser.close())
  const page = await browser.newPage()
  await page.setViewport({ width: 1280, height: 800 })
  page.on('console', m => porter.clientLog.push(`[chromium] ${m.type()}: ${m.text()}`))
  page.on('pageerror', e => porter.clientLog.push(`[chromium] page error: ${e.stack || e}`))
  page.on('dialog', dialog => dialog.accept())
  await page.goto(`${porter.httpUrl}/`, { waitUntil: 'load' })
  // A wrong password is refused on the page, without a browser prompt.
  await page.type('#password', 'wrong')
  await page.click('#login-button')
  await page.waitForFunction(() => !document.getElementById('login-error').hidden, { timeout: WAIT_MS })
  await page.$eval('#password', el => { el.value = '' })
  await page.type('#password', 'guest')
  await page.click('#login-button')
  await page.waitForSelector('#nav a.active', { visible: true, timeout: WAIT_MS })
  return page
}

/// The text of column `column` (0-based) in the table row for `name`.
function cellOf (page, name, column) {
  return page.$eval(`tr[data-name="${name}"]`, (row, column) => row.children[column].textContent, column)
    .catch(() => null)
}

async function waitForCell (page, name, column, expected) {
  await page.waitForFunction((name, column, expected) => {
    const row = document.querySelector(`tr[data-name="${name}"]`)
    return row && row.children[column].textContent === expected
  }, { timeout: WAIT_MS, polling: 200 }, name, column, expected)
}

async function screenshot (page, porter, name, options = {}) {
  const shot = path.join(porter.tmp, `ui-${name}.png`)
  await page.screenshot({ path: shot, ...options })
  assert.ok(fs.statSync(shot).size > 0)
  if (process.env.PORTER_UPDATE_SCREENSHOT === '1') {
    fs.mkdirSync(path.join(REPO_ROOT, 'docs', 'images'), { recursive: true })
    fs.copyFileSync(shot, path.join(REPO_ROOT, 'docs', 'images', `ui-${name}.png`))
  }
}

test('a queue added in the UI fills from amqplib and is purged from the UI', { timeout: 120_000 },
  porterTest(async (t, porter) => {
    if (!fs.existsSync(CHROMIUM)) return t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`)
    const page = await logIn(porter, t)
    await screenshot(page, porter, 'overview')

    await page.goto(`${porter.httpUrl}/#/queues`)
    await page.waitForSelector('#new-queue', { timeout: WAIT_MS })
    await page.type('#new-queue', 'ui-orders')
    await page.click('#declare-queue')
    await page.waitForSelector('tr[data-name="ui-orders"]', { timeout: WAIT_MS })

    const connection = await amqplib.connect(porter.amqpUrl)
    porter.defer(() => connection.close())
    const channel = await connection.createConfirmChannel()
    for (const body of ['a', 'b', 'c']) channel.sendToQueue('ui-orders', Buffer.from(body), { persistent: true })
    await channel.waitForConfirms()

    // Columns: vhost, name, ready, unacked, total, consumers.
    await waitForCell(page, 'ui-orders', 2, '3')
    assert.equal(await cellOf(page, 'ui-orders', 4), '3')
    await screenshot(page, porter, 'queues')
    await page.click('tr[data-name="ui-orders"] button[data-action="purge"]')
    await waitForCell(page, 'ui-orders', 2, '0')
    const { messageCount } = await channel.checkQueue('ui-orders')
    assert.equal(messageCount, 0, 'the UI purge did not reach the queue')

    await page.goto(`${porter.httpUrl}/#/exchanges`)
    await page.waitForSelector('tr[data-name="amq.topic"]', { timeout: WAIT_MS })
    await screenshot(page, porter, 'exchanges')
    await page.goto(`${porter.httpUrl}/#/connections`)
    await page.waitForFunction(() => document.querySelector('main').textContent.includes('AMQP 0-9-1'), { timeout: WAIT_MS })
    await screenshot(page, porter, 'connections')
    // A user added on the Users page logs in over AMQP with amqplib; a monitoring user sees the
    // UI but its changes are refused with RabbitMQ's reason.
    await page.goto(`${porter.httpUrl}/#/users`)
    await page.waitForSelector('#new-user', { timeout: WAIT_MS })
    await page.type('#new-user', 'ui-watcher')
    await page.type('#new-user-password', 'w4tch')
    await page.select('#new-user-tags', 'monitoring')
    await page.click('#add-user')
    await page.waitForSelector('tr[data-name="ui-watcher"]', { timeout: WAIT_MS })
    await page.waitForSelector('tr[data-name="ui-watcher@/"]', { timeout: WAIT_MS })
    await screenshot(page, porter, 'users')
    const url = new URL(porter.amqpUrl)
    url.username = 'ui-watcher'
    url.password = 'w4tch'
    const asWatcher = await amqplib.connect(url.toString())
    await asWatcher.close()

    // The API page renders the OpenAPI document the broker generates.
    await page.goto(`${porter.httpUrl}/#/api`)
    await page.waitForSelector('[data-operation="topic_messages_browse_topic"]', { timeout: WAIT_MS })
    const described = await page.$$eval('[data-operation]', ops => ops.length)
    assert.ok(described >= 45, `${described} operations shown`)
    await screenshot(page, porter, 'api')
  }, OPTIONS))

test('a consumer group\'s lag falls in the UI as a kafkajs consumer runs', { timeout: 120_000 },
  porterTest(async (t, porter) => {
    if (!fs.existsSync(CHROMIUM)) return t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium)`)
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    await admin.createTopics({ topics: [{ topic: 'ui-clicks', numPartitions: 2 }] })
    const producer = kafka.producer()
    await producer.connect()
    porter.defer(() => producer.disconnect())
    await producer.send({ topic: 'ui-clicks', messages: Array.from({ length: 40 }, (_, i) => ({ value: `c${i}`, partition: i % 2 })) })
    // The group starts at the beginning with nothing read: lag 40.
    await admin.setOffsets({ groupId: 'ui-reports', topic: 'ui-clicks', partitions: [{ partition: 0, offset: '0' }, { partition: 1, offset: '0' }] })

    const page = await logIn(porter, t)
    await page.goto(`${porter.httpUrl}/#/groups/ui-reports`)
    await page.waitForFunction(() => document.getElementById('total-lag')?.textContent === '40', { timeout: WAIT_MS, polling: 200 })

    const consumer = kafka.consumer({ groupId: 'ui-reports', heartbeatInterval: 300, sessionTimeout: 10_000, rebalanceTimeout: 10_000, maxWaitTimeInMs: 500 })
    await consumer.connect()
    porter.defer(() => consumer.disconnect())
    await consumer.subscribe({ topic: 'ui-clicks', fromBeginning: true })
    const seen = []
    await consumer.run({ eachMessage: async ({ message }) => { seen.push(`${message.key}=${message.value}`) } })
    await page.waitForFunction(() => document.getElementById('total-lag')?.textContent === '0', { timeout: 60_000, polling: 250 })
    await screenshot(page, porter, 'group')
    // A topic added from the Topics page exists for Kafka clients.
    await page.goto(`${porter.httpUrl}/#/topics`)
    await page.waitForSelector('#new-topic', { timeout: WAIT_MS })
    await page.type('#new-topic', 'ui-made')
    await page.$eval('#new-topic-partitions', el => { el.value = '3' })
    await page.click('#create-topic')
    await page.waitForSelector('tr[data-name="ui-made"]', { timeout: WAIT_MS })
    const described = await admin.fetchTopicMetadata({ topics: ['ui-made'] })
    assert.equal(described.topics[0].partitions.length, 3)

    // Definitions imported from a file on the Topics page: a RabbitMQ-format queue appears.
    const file = path.join(porter.tmp, 'definitions.json')
    fs.writeFileSync(file, JSON.stringify({ queues: [{ name: 'ui-imported', vhost: '/', durable: true }] }))
    const input = await page.$('#import-definitions')
    await input.uploadFile(file)
    await waitFor('the imported queue', async () => {
      const answer = await fetch(`${porter.httpUrl}/api/queues/%2F/ui-imported`, { headers: { Authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` } })
      return answer.status === 200
    })

    await page.goto(`${porter.httpUrl}/#/topics/ui-clicks`)
    await page.waitForFunction(() => document.querySelector('main').textContent.includes('High watermark'), { timeout: WAIT_MS })
    // A config override set on the topic's page is what Kafka's admin client describes.
    await page.type('#config-key', 'retention.ms')
    await page.type('#config-value', '7200000')
    await page.click('#set-config')
    await page.waitForSelector('tr[data-name="retention.ms"]', { timeout: WAIT_MS })
    const configs = await admin.describeConfigs({ resources: [{ type: 2, name: 'ui-clicks', configNames: ['retention.ms'] }], includeSynonyms: false })
    assert.equal(configs.resources[0].configEntries[0].configValue, '7200000')
    // A test message produced from the topic page reaches the kafkajs consumer with its key...
    await page.type('#produce-key', 'ui-key')
    await page.type('#produce-value', 'from the ui')
    await page.click('#produce')
    await waitFor('kafkajs to read the UI\'s message', async () => seen.includes('ui-key=from the ui'))
    // ...and browsing the last records shows it beside what kafkajs produced, without consuming.
    await page.waitForSelector('#browse-from', { timeout: WAIT_MS })
    await page.$eval('#browse-from', el => { el.value = '-2' })
    await page.click('#browse')
    await page.waitForFunction(() => {
      const text = document.getElementById('browsed')?.textContent || ''
      return text.includes('from the ui') && text.includes('ui-key') && text.includes('c39')
    }, { timeout: WAIT_MS, polling: 200 })
    await screenshot(page, porter, 'topic', { fullPage: true })
  }, OPTIONS))
