'use strict'
// Helpers for the amqplib end-to-end tests (tests/node/amqp*.test.js), on top of ./porter.js.
//
//   const { amqpTest } = require('./amqp')
//   test('x', { timeout: 30_000 }, amqpTest(async (t, amqp) => {
//     const conn = await amqp.connect()        // amqplib ChannelModel, closed at the end
//     const ch = await amqp.channel(conn)      // channel with an 'error' listener (errors reject calls)
//     const q = amqp.name('work')              // unique name; deleted at the end on an external broker
//     await amqp.broker.restart()              // only with { restarts: true }: Porter only
//   }))
//
// The broker is a fresh Porter (with --amqp-listen), or, when AMQP_TEST_URL is set (e.g.
// amqp://guest:guest@127.0.0.1:5673/%2F from scripts/peers/rabbitmq.sh), that external broker;
// tests made with { restarts: true } are skipped then.

const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { setTimeout: sleep } = require('node:timers/promises')
const amqplib = require('amqplib')
const { PORTER_BIN, binaryHasFlag, porterTest } = require('./porter')

const AMQP_TEST_URL = process.env.AMQP_TEST_URL || null
const WAIT_MS = 10_000

class ExternalBroker {
  constructor (url) {
    const parsed = new URL(url)
    this.amqpUrl = url
    this.amqpHost = parsed.hostname
    this.amqpPort = Number(parsed.port) || 5672
    this.external = true
  }
}

class AmqpContext {
  constructor (broker, testName) {
    this.broker = broker
    this.testId = testName.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 40)
    this.connections = []
    this.queues = []
    this.exchanges = []
  }

  get url () {
    return this.broker.amqpUrl
  }

  async connect (options = {}) {
    const { url = this.url, ...socketOptions } = options
    const conn = await amqplib.connect(url, { timeout: 5000, ...socketOptions })
    conn.on('error', () => {}) // surfaced through the failing calls and 'close'
    this.connections.push(conn)
    return conn
  }

  async channel (conn, confirm = false) {
    conn = conn || await this.connect()
    const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel()
    ch.on('error', err => { ch.lastError = err })
    return ch
  }

  name (prefix) {
    const value = `t.${prefix}.${this.testId}.${crypto.randomBytes(4).toString('hex')}`
    this.queues.push(value)
    return value
  }

  exchange (prefix) {
    const value = `t.${prefix}.${this.testId}.${crypto.randomBytes(4).toString('hex')}`
    this.exchanges.push(value)
    return value
  }

  async close () {
    for (const conn of this.connections) {
      try { await conn.close() } catch {}
    }
    if (!this.broker.external || (this.queues.length === 0 && this.exchanges.length === 0)) return
    let conn
    try {
      conn = await amqplib.connect(this.url, { timeout: 5000 })
      conn.on('error', () => {})
      for (const [kind, names] of [['queue', this.queues], ['exchange', this.exchanges]]) {
        for (const value of names) {
          try {
            const ch = await conn.createChannel()
            ch.on('error', () => {})
            if (kind === 'queue') await ch.deleteQueue(value)
            else await ch.deleteExchange(value)
            await ch.close()
          } catch {}
        }
      }
    } catch {
    } finally {
      try { if (conn) await conn.close() } catch {}
    }
  }
}

// Wraps a node:test body `async (t, amqp) => ...` (see the header).
function amqpTest (body, { restarts = false } = {}) {
  if (AMQP_TEST_URL) {
    return async t => {
      if (restarts) {
        t.skip('restarts the broker: Porter only (AMQP_TEST_URL is set)')
        return
      }
      const amqp = new AmqpContext(new ExternalBroker(AMQP_TEST_URL), t.name)
      t.after(() => amqp.close())
      await body(t, amqp)
    }
  }
  return async t => {
    assert.ok(binaryHasFlag('--amqp-listen'),
      `${PORTER_BIN} has no --amqp-listen (the AMQP gateway is not built in yet); rebuild it, or run ` +
      'the AMQP tests against another broker with AMQP_TEST_URL=amqp://...')
    await porterTest(async (t2, porter) => {
      const amqp = new AmqpContext(porter, t2.name)
      porter.defer(() => amqp.close())
      await body(t2, amqp)
    })(t)
  }
}

// Collects `n` messages from a consumer on `queue` (acking each unless noAck or ack=false), then
// cancels; fails after `ms`. Messages beyond the n-th that arrive first are nacked with requeue.
async function consumeN (ch, queue, n, { ms = WAIT_MS, ack = true, noAck = false, prefetch = 0 } = {}) {
  const got = []
  if (prefetch) await ch.prefetch(prefetch)
  let resolveDone
  const done = new Promise(resolve => { resolveDone = resolve })
  const { consumerTag } = await ch.consume(queue, msg => {
    if (msg === null) return
    if (got.length >= n) {
      // more than asked for arrived before the cancel: give it back, as pika's cancel() does
      if (!noAck) ch.nack(msg, false, true)
      return
    }
    got.push(msg)
    if (ack && !noAck) ch.ack(msg)
    if (got.length === n) resolveDone()
  }, { noAck })
  if (n > 0) {
    const abort = new AbortController()
    const timer = sleep(ms, 'timeout', { signal: abort.signal }).catch(() => null)
    const outcome = await Promise.race([done, timer])
    abort.abort()
    assert.notEqual(outcome, 'timeout',
      `${queue}: got ${got.length} of ${n} messages in ${ms} ms: ${got.map(m => m.content.toString()).join(',')}`)
  }
  await ch.cancel(consumerTag)
  return got
}

// basic.get until `n` messages came (polling an empty queue), acking each unless ack=false.
async function getN (ch, queue, n, { ms = WAIT_MS, ack = true } = {}) {
  const got = []
  const deadline = Date.now() + ms
  while (got.length < n) {
    const msg = await ch.get(queue, { noAck: false })
    if (msg === false) {
      assert.ok(Date.now() < deadline, `${queue}: got ${got.length} of ${n} in ${ms} ms`)
      await sleep(50)
      continue
    }
    if (ack) ch.ack(msg)
    got.push(msg)
  }
  return got
}

// Expects `promise` (a channel operation) to fail with a channel or connection close of `code`.
// Resolves when `probe()` is truthy; fails with `what` after `ms`.
async function until (what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value) return value
    assert.ok(Date.now() < deadline, `timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}

async function expectCode (promise, code) {
  await assert.rejects(promise, err => {
    assert.equal(err.code, code, `want ${code}, got ${err.code}: ${err.message}`)
    return true
  })
}

const bodies = msgs => msgs.map(m => m.content.toString())

module.exports = { AMQP_TEST_URL, WAIT_MS, amqpTest, consumeN, getN, expectCode, bodies, sleep, until }
