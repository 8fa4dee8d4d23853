'use strict'
// AMQP durability with amqplib (Porter only: restarts the broker; skipped with AMQP_TEST_URL):
// a durable queue with persistent, confirmed messages survives a graceful restart and a kill -9;
// a transient queue does not survive.

const test = require('node:test')
const assert = require('node:assert/strict')
const { amqpTest, consumeN, bodies } = require('./amqp')

const T = { timeout: 90_000 }

for (const how of ['restart', 'kill -9']) {
  test(`durable queue and persistent messages survive a ${how}; a transient queue does not`, T, amqpTest(async (t, amqp) => {
    const conn = await amqp.connect()
    const ch = await amqp.channel(conn, true)
    const durable = amqp.name('durable')
    const transient = amqp.name('transient')
    await ch.assertQueue(durable, { durable: true })
    await ch.assertQueue(transient, { durable: false })
    const total = 100
    for (let i = 0; i < total; i++) ch.sendToQueue(durable, Buffer.from(`p${i}`), { persistent: true })
    ch.sendToQueue(transient, Buffer.from('gone'), { persistent: true })
    await ch.waitForConfirms()
    await consumeN(ch, durable, 10) // acked: gone for good
    await conn.close()

    if (how === 'restart') {
      await amqp.broker.restart()
    } else {
      await amqp.broker.kill()
      await amqp.broker.start()
    }

    const after = await amqp.channel()
    const { messageCount } = await after.checkQueue(durable)
    assert.equal(messageCount, total - 10)
    const got = await consumeN(after, durable, total - 10)
    assert.deepEqual(bodies(got), Array.from({ length: total - 10 }, (_, i) => `p${i + 10}`))
    assert.ok(got.every(m => m.properties.deliveryMode === 2))
    const probe = await amqp.channel()
    await assert.rejects(probe.checkQueue(transient), err => err.code === 404)
  }, { restarts: true }))
}
