'use strict'
// 10,000 keyed records with headers, half gzip and half uncompressed, through a 3-partition topic and
// a consumer group: everything arrives once, unchanged, in order per partition, and the group's
// auto-committed offsets end at the log end offsets.

const test = require('node:test')
const assert = require('node:assert/strict')
const { CompressionTypes } = require('kafkajs')
const { kafkaFor, porterTest, waitFor } = require('./porter')

const TOPIC = 'orders'
const GROUP = 'orders-readers'
const PARTITIONS = 3
const MESSAGES = 10_000
const BATCH = 500
const KEYS = 97

function message (i) {
  return {
    key: `key-${i % KEYS}`,
    value: JSON.stringify({ seq: i, body: 'x'.repeat(i % 50) }),
    headers: {
      seq: String(i),
      'content-type': 'application/json',
      // repeated header key: kafkajs sends two headers and reads them back as an array
      tag: ['a', `b-${i % 3}`]
    }
  }
}

function headersAsStrings (headers) {
  const out = {}
  for (const [k, v] of Object.entries(headers)) {
    out[k] = Array.isArray(v) ? v.map(b => b.toString()) : v.toString()
  }
  return out
}

test('produce 10,000 keyed messages with headers (gzip and none), consume them in a group', { timeout: 90_000 },
  porterTest(async (t, porter) => {
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true }), true)

    const producer = kafka.producer()
    await producer.connect()
    porter.defer(() => producer.disconnect())
    const appended = new Map()
    for (let start = 0; start < MESSAGES; start += BATCH) {
      const messages = []
      for (let i = start; i < start + BATCH; i++) messages.push(message(i))
      const compression = (start / BATCH) % 2 === 0 ? CompressionTypes.GZIP : CompressionTypes.None
      const metadata = await producer.send({ topic: TOPIC, messages, acks: -1, compression })
      for (const m of metadata) assert.equal(m.errorCode, 0, `produce error ${JSON.stringify(m)}`)
    }
    const ends = await admin.fetchTopicOffsets(TOPIC)
    assert.equal(ends.length, PARTITIONS)
    const total = ends.reduce((sum, p) => sum + Number(p.high), 0)
    assert.equal(total, MESSAGES, `log end offsets ${JSON.stringify(ends)}`)
    for (const p of ends) {
      assert.equal(p.low, '0')
      assert.ok(Number(p.high) > 0, `partition ${p.partition} got no messages: ${JSON.stringify(ends)}`)
    }

    const consumer = kafka.consumer({ groupId: GROUP, heartbeatInterval: 500, maxWaitTimeInMs: 500 })
    await consumer.connect()
    porter.defer(() => consumer.disconnect())
    await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
    const received = new Map() // partition -> [{ offset, seq }]
    const keyPartition = new Map()
    const problems = []
    let count = 0
    await consumer.run({
      eachMessage: async ({ topic, partition, message: m }) => {
        count += 1
        const value = JSON.parse(m.value.toString())
        const expected = message(value.seq)
        const got = { key: m.key.toString(), value: m.value.toString(), headers: headersAsStrings(m.headers) }
        const want = { key: expected.key, value: expected.value, headers: expected.headers }
        if (problems.length < 5) {
          try {
            assert.equal(topic, TOPIC)
            assert.deepEqual(got, want)
            const seen = keyPartition.get(got.key)
            if (seen === undefined) keyPartition.set(got.key, partition)
            else assert.equal(partition, seen, `key ${got.key} in two partitions`)
          } catch (err) {
            problems.push(err)
          }
        }
        if (!received.has(partition)) received.set(partition, [])
        received.get(partition).push({ offset: Number(m.offset), seq: value.seq })
      }
    })
    await waitFor(() => `${MESSAGES} messages (have ${count})`, () => count >= MESSAGES, 60_000)
    if (problems.length > 0) throw problems[0]

    const seqs = new Set()
    for (const [partition, list] of received) {
      const high = Number(ends.find(p => p.partition === partition).high)
      assert.equal(list.length, high, `partition ${partition}: ${list.length} received, end offset ${high}`)
      list.forEach(({ offset, seq }, index) => {
        assert.equal(offset, index, `partition ${partition}: offset ${offset} at position ${index}`)
        if (index > 0) assert.ok(seq > list[index - 1].seq, `partition ${partition}: seq ${seq} after ${list[index - 1].seq}`)
        seqs.add(seq)
      })
    }
    assert.equal(seqs.size, MESSAGES, 'every message exactly once')
    assert.equal(count, MESSAGES, 'no message delivered twice')

    // autoCommit (kafkajs commits after each batch): the group's offsets reach the log end offsets
    const expectedCommitted = ends.map(p => ({ partition: p.partition, offset: p.high })).sort((a, b) => a.partition - b.partition)
    await waitFor('committed offsets at log end', async () => {
      const [{ topic, partitions }] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
      assert.equal(topic, TOPIC)
      const committed = partitions.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition)
      assert.deepEqual(committed, expectedCommitted)
      return true
    }, 15_000)
    await consumer.disconnect()

    // still there after the consumer left, and describeGroups sees an empty group
    const [{ partitions }] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
    assert.deepEqual(partitions.map(p => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition), expectedCommitted)
    const { groups: [group] } = await admin.describeGroups([GROUP])
    assert.equal(group.groupId, GROUP)
    assert.equal(group.state, 'Empty')
    assert.deepEqual(group.members, [])
  }))
