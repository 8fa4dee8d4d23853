'use strict'
// AMQP 0-9-1 routing with amqplib: fanout, topic, headers, exchange-to-exchange, alternate exchange,
// mandatory returns, RPC over reply_to. Porter, or AMQP_TEST_URL.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { amqpTest, consumeN, getN, bodies, sleep, until } = require('./amqp')

const T = { timeout: 60_000 }

async function drain (ch, q) {
  const out = []
  for (;;) {
    const m = await ch.get(q, { noAck: true })
    if (m === false) return out.sort()
    out.push(m.content.toString())
  }
}

test('fanout copies to every bound queue', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const ex = amqp.exchange('fan')
  await ch.assertExchange(ex, 'fanout', { durable: false })
  const queues = [amqp.name('q0'), amqp.name('q1'), amqp.name('q2')]
  for (const q of queues) {
    await ch.assertQueue(q)
    await ch.bindQueue(q, ex, '')
  }
  ch.publish(ex, 'whatever', Buffer.from('news'))
  await ch.waitForConfirms()
  for (const q of queues) assert.deepEqual(bodies(await getN(ch, q, 1)), ['news'])
}))

test('topic routing with * and #', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const ex = amqp.exchange('topic')
  await ch.assertExchange(ex, 'topic', { durable: false })
  const patterns = { star: 'stock.*.nyse', hash: 'stock.#', all: '#', middle: 'a.#.z' }
  const queues = {}
  for (const [label, pattern] of Object.entries(patterns)) {
    queues[label] = amqp.name(label)
    await ch.assertQueue(queues[label])
    await ch.bindQueue(queues[label], ex, pattern)
  }
  const keys = ['stock.usd.nyse', 'stock.nyse', 'stock', 'stock.usd.nyse.x', 'a.z', 'a.b.c.z', 'x.y']
  for (const key of keys) ch.publish(ex, key, Buffer.from(key))
  await ch.waitForConfirms()
  await sleep(100)
  assert.deepEqual(await drain(ch, queues.star), ['stock.usd.nyse'])
  assert.deepEqual(await drain(ch, queues.hash), ['stock', 'stock.nyse', 'stock.usd.nyse', 'stock.usd.nyse.x'])
  assert.deepEqual(await drain(ch, queues.all), [...keys].sort())
  assert.deepEqual(await drain(ch, queues.middle), ['a.b.c.z', 'a.z'])
}))

test('headers exchange: x-match all and any', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const ex = amqp.exchange('headers')
  await ch.assertExchange(ex, 'headers', { durable: false })
  const qAll = amqp.name('all')
  const qAny = amqp.name('any')
  await ch.assertQueue(qAll)
  await ch.assertQueue(qAny)
  await ch.bindQueue(qAll, ex, '', { 'x-match': 'all', format: 'pdf', type: 'report' })
  await ch.bindQueue(qAny, ex, '', { 'x-match': 'any', format: 'pdf', type: 'log' })
  const cases = {
    'pdf-report': { format: 'pdf', type: 'report' },
    'pdf-only': { format: 'pdf' },
    'log-only': { type: 'log' },
    'zip-report': { format: 'zip', type: 'report' }
  }
  for (const [body, headers] of Object.entries(cases)) ch.publish(ex, '', Buffer.from(body), { headers })
  await ch.waitForConfirms()
  await sleep(100)
  assert.deepEqual(await drain(ch, qAll), ['pdf-report'])
  assert.deepEqual(await drain(ch, qAny), ['log-only', 'pdf-only', 'pdf-report'])
}))

test('exchange-to-exchange binding', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const up = amqp.exchange('up')
  const down = amqp.exchange('down')
  await ch.assertExchange(up, 'topic', { durable: false })
  await ch.assertExchange(down, 'fanout', { durable: false })
  await ch.bindExchange(down, up, 'orders.#')
  const q = amqp.name('down')
  await ch.assertQueue(q)
  await ch.bindQueue(q, down, '')
  ch.publish(up, 'orders.eu', Buffer.from('order'))
  ch.publish(up, 'payments.eu', Buffer.from('payment'))
  await ch.waitForConfirms()
  await sleep(100)
  assert.deepEqual(await drain(ch, q), ['order'])
  await ch.unbindExchange(down, up, 'orders.#')
  ch.publish(up, 'orders.eu', Buffer.from('after-unbind'))
  await ch.waitForConfirms()
  await sleep(100)
  assert.deepEqual(await drain(ch, q), [])
}))

test('alternate exchange receives unroutable messages', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const ae = amqp.exchange('ae')
  const main = amqp.exchange('main')
  await ch.assertExchange(ae, 'fanout', { durable: false })
  await ch.assertExchange(main, 'direct', { durable: false, alternateExchange: ae })
  const routed = amqp.name('routed')
  const unrouted = amqp.name('unrouted')
  await ch.assertQueue(routed)
  await ch.assertQueue(unrouted)
  await ch.bindQueue(routed, main, 'known')
  await ch.bindQueue(unrouted, ae, '')
  const returned = []
  ch.on('return', m => returned.push(m))
  ch.publish(main, 'known', Buffer.from('to-routed'), { mandatory: true })
  ch.publish(main, 'unknown', Buffer.from('to-ae'), { mandatory: true })
  await ch.waitForConfirms()
  assert.deepEqual(bodies(await getN(ch, routed, 1)), ['to-routed'])
  const [m] = await getN(ch, unrouted, 1)
  assert.equal(m.content.toString(), 'to-ae')
  assert.equal(m.fields.exchange, main)
  assert.equal(m.fields.routingKey, 'unknown')
  assert.equal(returned.length, 0, 'routed via the alternate exchange: not returned')
}))

test('mandatory publish to an unroutable key is returned with 312 NO_ROUTE', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const ex = amqp.exchange('nowhere')
  await ch.assertExchange(ex, 'direct', { durable: false })
  const returned = []
  ch.on('return', m => returned.push(m))
  let confirmed = null
  ch.publish(ex, 'no-such-key', Buffer.from('lost'), { mandatory: true, messageId: 'm-1' }, err => { confirmed = !err })
  await ch.waitForConfirms()
  await until('basic.return', () => returned.length === 1)
  const [r] = returned
  assert.equal(r.fields.replyCode, 312)
  assert.equal(r.fields.replyText, 'NO_ROUTE')
  assert.equal(r.fields.exchange, ex)
  assert.equal(r.fields.routingKey, 'no-such-key')
  assert.equal(r.content.toString(), 'lost')
  assert.equal(r.properties.messageId, 'm-1')
  assert.equal(confirmed, true, 'an unroutable message is still confirmed (acked), after its return')
}))

test('RPC: reply_to an exclusive auto-delete server-named queue, matched by correlation_id', T, amqpTest(async (t, amqp) => {
  const server = await amqp.channel()
  const rpcQueue = amqp.name('rpc')
  await server.assertQueue(rpcQueue, { durable: false })
  await server.prefetch(1)
  await server.consume(rpcQueue, msg => {
    const n = Number(msg.content.toString())
    server.sendToQueue(msg.properties.replyTo, Buffer.from(String(n * n)), { correlationId: msg.properties.correlationId })
    server.ack(msg)
  })
  const clientConn = await amqp.connect()
  const client = await amqp.channel(clientConn)
  const { queue: replyQueue } = await client.assertQueue('', { exclusive: true, autoDelete: true })
  assert.match(replyQueue, /^amq\.gen-/)
  const responses = new Map()
  await client.consume(replyQueue, msg => responses.set(msg.properties.correlationId, msg.content.toString()), { noAck: true })
  const calls = new Map()
  for (let n = 1; n <= 5; n++) {
    const id = crypto.randomUUID()
    calls.set(id, String(n * n))
    client.sendToQueue(rpcQueue, Buffer.from(String(n)), { replyTo: replyQueue, correlationId: id })
  }
  await until('5 RPC responses', () => responses.size === 5)
  assert.deepEqual(new Map([...responses].sort()), new Map([...calls].sort()))
  await clientConn.close()
  const probe = await amqp.channel()
  await assert.rejects(probe.checkQueue(replyQueue), err => err.code === 404)
}))

test('consumers on the same queue share it round-robin (no prefetch)', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('rr')
  await ch.assertQueue(q)
  const got = { a: [], b: [] }
  const ca = await amqp.channel()
  const cb = await amqp.channel()
  await ca.consume(q, m => got.a.push(m.content.toString()), { noAck: true })
  await cb.consume(q, m => got.b.push(m.content.toString()), { noAck: true })
  for (let i = 0; i < 10; i++) ch.sendToQueue(q, Buffer.from(String(i)))
  await ch.waitForConfirms()
  await until('10 deliveries', () => got.a.length + got.b.length === 10)
  assert.equal(got.a.length, 5)
  assert.equal(got.b.length, 5)
  void consumeN
}))
