'use strict'
// AMQP 0-9-1 basics with amqplib: work queues with fair dispatch, basic.get, redelivery, nack/reject/
// recover, publisher confirms, message properties and large messages. Porter, or AMQP_TEST_URL.

const test = require('node:test')
const assert = require('node:assert/strict')
const { amqpTest, consumeN, getN, bodies, sleep } = require('./amqp')

const T = { timeout: 60_000 }

test('work queue: prefetch=1 gives the fast consumer more, every task once', T, amqpTest(async (t, amqp) => {
  const setup = await amqp.channel(null, true)
  const q = amqp.name('work')
  await setup.assertQueue(q, { durable: true })
  const received = { slow: [], fast: [] }
  const workers = []
  for (const [label, delayMs] of [['slow', 400], ['fast', 0]]) {
    const ch = await amqp.channel()
    await ch.prefetch(1)
    await ch.consume(q, msg => {
      setTimeout(() => {
        received[label].push(msg.content.toString())
        ch.ack(msg)
      }, delayMs)
    })
    workers.push(ch)
  }
  const total = 20
  for (let i = 0; i < total; i++) setup.sendToQueue(q, Buffer.from(`task-${i}`), { persistent: true })
  await setup.waitForConfirms()
  const deadline = Date.now() + 20_000
  while (received.slow.length + received.fast.length < total && Date.now() < deadline) await sleep(50)
  const all = [...received.slow, ...received.fast].sort()
  assert.deepEqual(all, Array.from({ length: total }, (_, i) => `task-${i}`).sort())
  assert.ok(received.fast.length >= 3 * Math.max(1, received.slow.length), JSON.stringify(received))
}))

test('basic.get with and without ack, get-empty, message counts', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('get')
  const ok = await ch.assertQueue(q)
  assert.equal(ok.queue, q)
  assert.equal(ok.messageCount, 0)
  assert.equal(await ch.get(q), false, 'get-empty')
  for (const b of ['m1', 'm2', 'm3']) ch.sendToQueue(q, Buffer.from(b))
  await ch.waitForConfirms()
  assert.equal((await ch.checkQueue(q)).messageCount, 3)
  const first = await ch.get(q, { noAck: true })
  assert.equal(first.content.toString(), 'm1')
  assert.equal(first.fields.messageCount, 2)
  assert.equal(first.fields.redelivered, false)
  const second = await ch.get(q)
  assert.equal(second.content.toString(), 'm2')
  ch.ack(second)
  // an unacked get comes back, redelivered, when its channel closes
  const other = await amqp.channel()
  const third = await other.get(q)
  assert.equal(third.content.toString(), 'm3')
  assert.equal(third.fields.messageCount, 0)
  await other.close()
  const again = await ch.get(q)
  assert.equal(again.content.toString(), 'm3')
  assert.equal(again.fields.redelivered, true)
  ch.ack(again)
  assert.equal(await ch.get(q), false)
  assert.equal((await ch.checkQueue(q)).messageCount, 0)
}))

test('unacked messages of a closed connection go to another consumer, redelivered', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('crashy')
  await ch.assertQueue(q)
  for (const b of ['a', 'b', 'c']) ch.sendToQueue(q, Buffer.from(b))
  await ch.waitForConfirms()
  const doomed = await amqp.connect()
  const dch = await amqp.channel(doomed)
  const first = await consumeN(dch, q, 3, { ack: false })
  assert.deepEqual(bodies(first), ['a', 'b', 'c'])
  assert.ok(first.every(m => m.fields.redelivered === false))
  await doomed.close()
  const again = await consumeN(await amqp.channel(), q, 3)
  assert.deepEqual(bodies(again), ['a', 'b', 'c'])
  assert.ok(again.every(m => m.fields.redelivered === true))
}))

test('nack/reject with requeue and basic.recover set redelivered', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('requeue')
  await ch.assertQueue(q)
  for (const b of ['one', 'two', 'three']) ch.sendToQueue(q, Buffer.from(b))
  await ch.waitForConfirms()
  const [m1, m2, m3] = await getN(ch, q, 3, { ack: false })
  ch.reject(m1, true)
  ch.nack(m2, false, true)
  const back = await getN(ch, q, 2)
  assert.deepEqual(bodies(back).sort(), ['one', 'two'])
  assert.ok(back.every(m => m.fields.redelivered))
  // m3 is still unacked: recover puts it back
  await ch.recover()
  const [r] = await getN(ch, q, 1)
  assert.equal(r.content.toString(), 'three')
  assert.equal(r.fields.redelivered, true)
  void m3
}))

test('publisher confirms for many messages (ConfirmChannel)', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('confirms')
  await ch.assertQueue(q, { durable: true })
  const total = 2000
  const acked = []
  for (let i = 0; i < total; i++) {
    ch.sendToQueue(q, Buffer.from(String(i)), { persistent: true }, err => { if (!err) acked.push(i) })
  }
  await ch.waitForConfirms()
  assert.equal(acked.length, total)
  assert.equal((await ch.checkQueue(q)).messageCount, total)
  const got = await consumeN(await amqp.channel(), q, total, { ms: 30_000, prefetch: 500 })
  assert.deepEqual(got.map(m => Number(m.content.toString())), Array.from({ length: total }, (_, i) => i))
}))

test('all message properties and header types round-trip', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('props')
  await ch.assertQueue(q)
  const headers = {
    str: 'text ünïcode',
    small: 42, // amqplib encodes it as a signed byte ('b')
    short: -300, // 's'
    int: 70000, // 'I'
    long: 2 ** 40, // 'l'
    float: 2.5, // 'd'
    bool: true,
    bytes: Buffer.from([0, 1, 255]),
    none: null,
    array: [1, 'two', false, [3.5], { k: 'v' }],
    table: { nested: { deeper: 1 }, list: ['a', 'b'] },
    typedTimestamp: { '!': 'timestamp', value: 1700000000 },
    typedUint: { '!': 'uint32', value: 4000000000 },
    typedFloat: { '!': 'float', value: 1.25 }
  }
  ch.sendToQueue(q, Buffer.from('{"id": 1}'), {
    contentType: 'application/json',
    contentEncoding: 'gzip',
    headers,
    deliveryMode: 2,
    priority: 7,
    correlationId: 'corr-123',
    replyTo: 'replies',
    expiration: '60000',
    messageId: 'msg-1',
    timestamp: 1700000000,
    type: 'order.created',
    userId: 'guest',
    appId: 'porter-tests'
  })
  await ch.waitForConfirms()
  const [m] = await consumeN(ch, q, 1)
  const p = m.properties
  assert.equal(m.content.toString(), '{"id": 1}')
  assert.equal(p.contentType, 'application/json')
  assert.equal(p.contentEncoding, 'gzip')
  assert.equal(p.deliveryMode, 2)
  assert.equal(p.priority, 7)
  assert.equal(p.correlationId, 'corr-123')
  assert.equal(p.replyTo, 'replies')
  assert.equal(p.expiration, '60000')
  assert.equal(p.messageId, 'msg-1')
  assert.equal(p.timestamp, 1700000000)
  assert.equal(p.type, 'order.created')
  assert.equal(p.userId, 'guest')
  assert.equal(p.appId, 'porter-tests')
  const h = p.headers
  assert.equal(h.str, 'text ünïcode')
  assert.equal(h.small, 42)
  assert.equal(h.short, -300)
  assert.equal(h.int, 70000)
  assert.equal(h.long, 2 ** 40)
  assert.equal(h.float, 2.5)
  assert.equal(h.bool, true)
  assert.deepEqual(h.bytes, Buffer.from([0, 1, 255]))
  assert.equal(h.none, null)
  assert.deepEqual(h.array, [1, 'two', false, [3.5], { k: 'v' }])
  assert.deepEqual(h.table, { nested: { deeper: 1 }, list: ['a', 'b'] })
  assert.deepEqual(h.typedTimestamp, { '!': 'timestamp', value: 1700000000 })
  assert.equal(h.typedUint, 4000000000)
  assert.equal(h.typedFloat, 1.25)
  assert.deepEqual(Object.keys(h).sort(), Object.keys(headers).sort())
}))

test('a 1 MiB message spans many body frames', T, amqpTest(async (t, amqp) => {
  const conn = await amqp.connect({ url: amqp.url + (amqp.url.includes('?') ? '&' : '?') + 'frameMax=131072' })
  const ch = await amqp.channel(conn, true)
  const q = amqp.name('large')
  await ch.assertQueue(q)
  const body = Buffer.alloc(1 << 20)
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 8)) & 0xff
  ch.sendToQueue(q, body)
  ch.sendToQueue(q, Buffer.from(body).reverse())
  await ch.waitForConfirms()
  const [a] = await getN(ch, q, 1)
  const [b] = await consumeN(ch, q, 1)
  assert.ok(a.content.equals(body), 'first body intact')
  assert.ok(b.content.equals(Buffer.from(body).reverse()), 'second body intact')
}))
