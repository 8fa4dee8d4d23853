'use strict'
// Produce, stop the broker with SIGTERM (exit 0), start it again on the same data dir and port:
// a new group reads everything from the beginning, committed offsets survived, and the clients
// that were connected across the restart (plain and idempotent producer) carry on.

const test = require('node:test')
const assert = require('node:assert/strict')
const { CompressionTypes } = require('kafkajs')
const { kafkaFor, porterTest, waitFor } = require('./porter')

const TOPIC = 'ledger'
const PARTITIONS = 3
const BEFORE = 3_000 // plain producer before the restart
const IDEMPOTENT_BEFORE = 500 // idempotent producer before the restart
const AFTER = 300 // each producer after the restart

async function sendRange (producer, prefix, from, to, options = {}) {
  const batch = 250
  for (let start = from; start < to; start += batch) {
    const messages = []
    for (let i = start; i < Math.min(to, start + batch); i++) {
      messages.push({ key: `k-${i % 13}`, value: `${prefix}-${i}`, headers: { n: String(i) } })
    }
    const metadata = await producer.send({ topic: TOPIC, messages, acks: -1, ...options })
    for (const m of metadata) assert.equal(m.errorCode, 0, JSON.stringify(m))
  }
}

// Consumes with a fresh group from the beginning until `count` values are in; returns value -> times.
async function consumeAll (kafka, porter, groupId, count) {
  const consumer = kafka.consumer({ groupId, heartbeatInterval: 500, maxWaitTimeInMs: 500 })
  await consumer.connect()
  porter.defer(() => consumer.disconnect())
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
  const seen = new Map()
  let total = 0
  await consumer.run({
    eachMessage: async ({ message }) => {
      const value = message.value.toString()
      assert.equal(message.headers.n.toString(), value.split('-').pop())
      seen.set(value, (seen.get(value) || 0) + 1)
      total += 1
    }
  })
  await waitFor(() => `${count} messages for ${groupId} (have ${total})`, () => total >= count, 30_000)
  await new Promise(resolve => setTimeout(resolve, 500)) // room for duplicates to show
  await consumer.disconnect()
  return { seen, total }
}

function assertExactlyOnce (seen, total, expected) {
  assert.equal(total, expected.length, `${total} delivered, ${expected.length} expected`)
  for (const value of expected) assert.equal(seen.get(value), 1, `${value} delivered ${seen.get(value) || 0} times`)
}

function range (prefix, from, to) {
  const out = []
  for (let i = from; i < to; i++) out.push(`${prefix}-${i}`)
  return out
}

test('broker restart (SIGTERM) keeps messages, offsets and serves connected clients', { timeout: 120_000 },
  porterTest(async (t, porter) => {
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true })

    const producer = kafka.producer()
    await producer.connect()
    porter.defer(() => producer.disconnect())
    await sendRange(producer, 'plain', 0, BEFORE / 2, { compression: CompressionTypes.GZIP })
    await sendRange(producer, 'plain', BEFORE / 2, BEFORE)
    const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await idempotent.connect()
    porter.defer(() => idempotent.disconnect())
    await sendRange(idempotent, 'idem', 0, IDEMPOTENT_BEFORE)

    // a group that has read (and committed) everything so far
    const early = await consumeAll(kafka, porter, 'before-restart', BEFORE + IDEMPOTENT_BEFORE)
    assertExactlyOnce(early.seen, early.total, [...range('plain', 0, BEFORE), ...range('idem', 0, IDEMPOTENT_BEFORE)])
    const endsBefore = await admin.fetchTopicOffsets(TOPIC)
    const committedBefore = (await admin.fetchOffsets({ groupId: 'before-restart', topics: [TOPIC] }))[0].partitions
    assert.deepEqual(committedBefore.map(p => p.offset).sort(), endsBefore.map(p => p.high).sort())

    await porter.restart()

    // the same admin client reconnects by itself; data and offsets are as they were
    const endsAfter = await waitFor('admin.fetchTopicOffsets after restart', () => admin.fetchTopicOffsets(TOPIC), 20_000)
    const byPartition = list => list.map(p => ({ partition: p.partition, low: p.low, high: p.high })).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(byPartition(endsAfter), byPartition(endsBefore))
    const committedAfter = (await admin.fetchOffsets({ groupId: 'before-restart', topics: [TOPIC] }))[0].partitions
    assert.deepEqual(committedAfter.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition),
      committedBefore.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition),
      'committed offsets survive the restart')

    // producers connected before the restart keep working; the idempotent one keeps its producer
    // id and sequence numbers, which the broker must have restored from the log
    await sendRange(producer, 'plain', BEFORE, BEFORE + AFTER)
    await sendRange(idempotent, 'idem', IDEMPOTENT_BEFORE, IDEMPOTENT_BEFORE + AFTER)

    const all = [...range('plain', 0, BEFORE + AFTER), ...range('idem', 0, IDEMPOTENT_BEFORE + AFTER)]
    const late = await consumeAll(kafka, porter, 'after-restart', all.length)
    assertExactlyOnce(late.seen, late.total, all)
    const ends = await admin.fetchTopicOffsets(TOPIC)
    assert.equal(ends.reduce((sum, p) => sum + Number(p.high), 0), all.length, 'nothing written twice')
  }))
