'use strict'
// The idempotent producer (InitProducerId, sequence numbers per partition) writes 5,000 messages;
// a consumer group reads each exactly once, and the log holds exactly 5,000 records.

const test = require('node:test')
const assert = require('node:assert/strict')
const { CompressionTypes } = require('kafkajs')
const { kafkaFor, porterTest, waitFor } = require('./porter')

const TOPIC = 'payments'
const PARTITIONS = 3
const MESSAGES = 5_000
const BATCH = 250

test('idempotent producer: 5,000 messages consumed exactly once', { timeout: 90_000 },
  porterTest(async (t, porter) => {
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true })

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    porter.defer(() => producer.disconnect())
    let sent = 0
    // mostly batches (alternating gzip and none), then single-message sends
    while (sent < MESSAGES - 50) {
      const messages = []
      for (let i = sent; i < sent + BATCH; i++) messages.push({ key: `payer-${i % 31}`, value: `payment-${i}` })
      const compression = (sent / BATCH) % 2 === 0 ? CompressionTypes.GZIP : CompressionTypes.None
      const metadata = await producer.send({ topic: TOPIC, messages, acks: -1, compression })
      for (const m of metadata) assert.equal(m.errorCode, 0, JSON.stringify(m))
      sent += BATCH
    }
    for (; sent < MESSAGES; sent++) {
      await producer.send({ topic: TOPIC, messages: [{ key: `payer-${sent % 31}`, value: `payment-${sent}` }], acks: -1 })
    }

    const ends = await admin.fetchTopicOffsets(TOPIC)
    assert.equal(ends.reduce((sum, p) => sum + Number(p.high), 0), MESSAGES, `log end offsets ${JSON.stringify(ends)}`)

    const consumer = kafka.consumer({ groupId: 'payments-audit', heartbeatInterval: 500, maxWaitTimeInMs: 500 })
    await consumer.connect()
    porter.defer(() => consumer.disconnect())
    await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
    const counts = new Map()
    let total = 0
    await consumer.run({
      eachMessage: async ({ message }) => {
        const value = message.value.toString()
        counts.set(value, (counts.get(value) || 0) + 1)
        total += 1
      }
    })
    await waitFor(() => `${MESSAGES} messages (have ${total})`, () => total >= MESSAGES, 60_000)
    // give a duplicate, if any, the chance to show up
    await new Promise(resolve => setTimeout(resolve, 1000))
    assert.equal(total, MESSAGES)
    assert.equal(counts.size, MESSAGES)
    for (let i = 0; i < MESSAGES; i++) assert.equal(counts.get(`payment-${i}`), 1, `payment-${i}`)
  }))
