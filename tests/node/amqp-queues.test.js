'use strict'
// AMQP 0-9-1 queue arguments with amqplib: retry-with-delay (TTL + DLX, x-death), per-message
// expiration, rejection dead-lettering, max-length overflow modes, priorities, single active
// consumer. Porter, or AMQP_TEST_URL.

const test = require('node:test')
const assert = require('node:assert/strict')
const { amqpTest, consumeN, getN, bodies, sleep, until } = require('./amqp')

const T = { timeout: 60_000 }

function death (msg, queue, reason) {
  const deaths = (msg.properties.headers || {})['x-death']
  assert.ok(Array.isArray(deaths) && deaths.length > 0, `no x-death: ${JSON.stringify(msg.properties.headers)}`)
  const entry = deaths.find(d => d.queue === queue && d.reason === reason)
  assert.ok(entry, `no x-death entry for (${queue}, ${reason}): ${JSON.stringify(deaths)}`)
  return entry
}

test('retry with delay: x-message-ttl + dead-letter back to the work queue, with x-death', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const work = amqp.name('work')
  const delay = amqp.name('delay')
  const delayMs = 400
  await ch.assertQueue(work, { durable: true, deadLetterExchange: '', deadLetterRoutingKey: delay })
  await ch.assertQueue(delay, { durable: true, messageTtl: delayMs, deadLetterExchange: '', deadLetterRoutingKey: work })
  ch.sendToQueue(work, Buffer.from('job'), { persistent: true, messageId: 'job-1' })
  await ch.waitForConfirms()
  const [first] = await getN(ch, work, 1, { ack: false })
  ch.reject(first, false)
  const rejectedAt = Date.now()
  const [back] = await getN(ch, work, 1)
  const waited = Date.now() - rejectedAt
  assert.ok(waited >= delayMs * 0.8, `came back after ${waited} ms, before the ${delayMs} ms delay`)
  assert.equal(back.content.toString(), 'job')
  assert.equal(back.properties.messageId, 'job-1')
  const expired = death(back, delay, 'expired')
  assert.equal(expired.count, 1)
  assert.equal(expired.exchange, '')
  assert.deepEqual(expired['routing-keys'], [delay])
  assert.equal(death(back, work, 'rejected').count, 1)
  assert.equal(back.properties.headers['x-first-death-reason'], 'rejected')
  assert.equal(back.properties.headers['x-first-death-queue'], work)
}))

test('per-message expiration dead-letters with reason expired', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const dead = amqp.name('dead')
  const q = amqp.name('expiring')
  await ch.assertQueue(dead)
  await ch.assertQueue(q, { deadLetterExchange: '', deadLetterRoutingKey: dead })
  ch.sendToQueue(q, Buffer.from('short'), { expiration: '150' })
  ch.sendToQueue(q, Buffer.from('long'), { expiration: '600000' })
  await ch.waitForConfirms()
  const [d] = await getN(ch, dead, 1)
  assert.equal(d.content.toString(), 'short')
  assert.equal(d.properties.expiration, undefined)
  const entry = death(d, q, 'expired')
  assert.equal(entry.count, 1)
  assert.equal(entry['original-expiration'], '150')
  assert.equal((await ch.checkQueue(q)).messageCount, 1)
}))

test('rejected with requeue=false is dead-lettered with reason rejected', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const dlx = amqp.exchange('dlx')
  const dead = amqp.name('dead')
  const q = amqp.name('orders')
  await ch.assertExchange(dlx, 'fanout', { durable: false })
  await ch.assertQueue(dead)
  await ch.bindQueue(dead, dlx, '')
  await ch.assertQueue(q, { deadLetterExchange: dlx })
  ch.sendToQueue(q, Buffer.from('bad'), { headers: { source: 'test' } })
  await ch.waitForConfirms()
  const [m] = await consumeN(ch, q, 1, { ack: false })
  ch.nack(m, false, false)
  const [d] = await getN(ch, dead, 1)
  assert.equal(d.content.toString(), 'bad')
  assert.equal(d.properties.headers.source, 'test')
  assert.equal(death(d, q, 'rejected').count, 1)
  assert.equal(d.fields.exchange, dlx)
}))

test('x-max-length drop-head dead-letters the oldest with reason maxlen', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const dead = amqp.name('dropped')
  const q = amqp.name('maxlen')
  await ch.assertQueue(dead)
  await ch.assertQueue(q, { maxLength: 3, arguments: { 'x-overflow': 'drop-head' }, deadLetterExchange: '', deadLetterRoutingKey: dead })
  for (let i = 1; i <= 5; i++) ch.sendToQueue(q, Buffer.from(`m${i}`))
  await ch.waitForConfirms()
  assert.deepEqual(bodies(await getN(ch, q, 3)), ['m3', 'm4', 'm5'])
  const dropped = await getN(ch, dead, 2)
  assert.deepEqual(bodies(dropped), ['m1', 'm2'])
  for (const d of dropped) assert.equal(death(d, q, 'maxlen').count, 1)
}))

test('x-max-length reject-publish nacks the overflow message', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('reject-publish')
  await ch.assertQueue(q, { maxLength: 2, arguments: { 'x-overflow': 'reject-publish' } })
  const outcome = []
  for (const b of ['first', 'second', 'third']) {
    ch.sendToQueue(q, Buffer.from(b), {}, err => outcome.push([b, err ? 'nack' : 'ack']))
  }
  await ch.waitForConfirms().catch(() => {}) // rejects when any message was nacked
  await until('3 confirms', () => outcome.length === 3)
  assert.deepEqual(outcome.sort(), [['first', 'ack'], ['second', 'ack'], ['third', 'nack']])
  assert.equal((await ch.checkQueue(q)).messageCount, 2)
}))

test('x-max-length reject-publish-dlx nacks and dead-letters the overflow', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const dead = amqp.name('overflowed')
  const q = amqp.name('reject-publish-dlx')
  await ch.assertQueue(dead)
  await ch.assertQueue(q, { maxLength: 1, arguments: { 'x-overflow': 'reject-publish-dlx' }, deadLetterExchange: '', deadLetterRoutingKey: dead })
  const outcome = []
  for (const b of ['kept', 'overflow']) ch.sendToQueue(q, Buffer.from(b), {}, err => outcome.push([b, err ? 'nack' : 'ack']))
  await ch.waitForConfirms().catch(() => {})
  await until('2 confirms', () => outcome.length === 2)
  assert.deepEqual(outcome.sort(), [['kept', 'ack'], ['overflow', 'nack']])
  const [d] = await getN(ch, dead, 1)
  assert.equal(d.content.toString(), 'overflow')
  assert.equal(death(d, q, 'maxlen').count, 1)
}))

test('x-max-priority: higher priorities first when queued before the consumer', T, amqpTest(async (t, amqp) => {
  const ch = await amqp.channel(null, true)
  const q = amqp.name('prio')
  await ch.assertQueue(q, { maxPriority: 10 })
  const sent = [['low', 1], ['none', undefined], ['high', 9], ['mid', 5], ['high2', 9]]
  for (const [b, priority] of sent) ch.sendToQueue(q, Buffer.from(b), priority === undefined ? {} : { priority })
  await ch.waitForConfirms()
  const got = await consumeN(await amqp.channel(), q, sent.length, { prefetch: 1 })
  assert.deepEqual(bodies(got), ['high', 'high2', 'mid', 'low', 'none'])
}))

test('x-single-active-consumer: one receives, the other takes over on cancel', T, amqpTest(async (t, amqp) => {
  const setup = await amqp.channel(null, true)
  const q = amqp.name('sac')
  await setup.assertQueue(q, { arguments: { 'x-single-active-consumer': true } })
  const a = await amqp.channel()
  const b = await amqp.channel()
  const got = { a: [], b: [] }
  const { consumerTag: tagA } = await a.consume(q, m => { got.a.push(m.content.toString()); a.ack(m) })
  await sleep(50)
  await b.consume(q, m => { got.b.push(m.content.toString()); b.ack(m) })
  for (let i = 0; i < 5; i++) setup.sendToQueue(q, Buffer.from(`a${i}`))
  await setup.waitForConfirms()
  await until('5 to the active consumer', () => got.a.length === 5)
  await sleep(200)
  assert.deepEqual(got.b, [])
  await a.cancel(tagA)
  for (let i = 0; i < 5; i++) setup.sendToQueue(q, Buffer.from(`b${i}`))
  await setup.waitForConfirms()
  await until('5 to the second consumer', () => got.b.length === 5)
  assert.deepEqual(got.b, ['b0', 'b1', 'b2', 'b3', 'b4'])
  assert.equal(got.a.length, 5)
}))
