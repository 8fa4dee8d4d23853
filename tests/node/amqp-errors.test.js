'use strict'
// AMQP 0-9-1 errors with amqplib: channel errors (404, 405, 406, 403) close only their channel;
// connection errors (bad credentials, unknown vhost). Codes asserted, not texts. Porter, or AMQP_TEST_URL.

const test = require('node:test')
const assert = require('node:assert/strict')
const amqplib = require('amqplib')
const { amqpTest, getN, expectCode, bodies } = require('./amqp')

const T = { timeout: 30_000 }

// The connection still works after a channel error: a new channel can publish and get.
async function assertConnectionAlive (amqp, conn) {
  const ch = await amqp.channel(conn, true)
  const q = amqp.name('alive')
  await ch.assertQueue(q)
  ch.sendToQueue(q, Buffer.from('alive'))
  await ch.waitForConfirms()
  assert.deepEqual(bodies(await getN(ch, q, 1)), ['alive'])
}

test('404: passive declare of a missing queue or exchange closes only the channel', T, amqpTest(async (t, amqp) => {
  const conn = await amqp.connect()
  const bystander = await amqp.channel(conn)
  await expectCode((await amqp.channel(conn)).checkQueue(amqp.name('missing')), 404)
  await expectCode((await amqp.channel(conn)).checkExchange(amqp.exchange('missing')), 404)
  await expectCode((await amqp.channel(conn)).consume(amqp.name('missing'), () => {}), 404)
  await bystander.assertQueue(amqp.name('bystander'))
  await assertConnectionAlive(amqp, conn)
}))

test('406: re-declaring a queue with other arguments or durability', T, amqpTest(async (t, amqp) => {
  const conn = await amqp.connect()
  const q = amqp.name('redeclare')
  await (await amqp.channel(conn)).assertQueue(q, { durable: false, maxLength: 10 })
  await expectCode((await amqp.channel(conn)).assertQueue(q, { durable: false, maxLength: 20 }), 406)
  await expectCode((await amqp.channel(conn)).assertQueue(q, { durable: true, maxLength: 10 }), 406)
  const ex = amqp.exchange('redeclare')
  await (await amqp.channel(conn)).assertExchange(ex, 'fanout', { durable: false })
  await expectCode((await amqp.channel(conn)).assertExchange(ex, 'direct', { durable: false }), 406)
  await assertConnectionAlive(amqp, conn)
}))

test("405: another connection's exclusive queue", T, amqpTest(async (t, amqp) => {
  const owner = await amqp.connect()
  const q = amqp.name('exclusive')
  await (await amqp.channel(owner)).assertQueue(q, { exclusive: true })
  const other = await amqp.connect()
  await expectCode((await amqp.channel(other)).assertQueue(q, { exclusive: false }), 405)
  await expectCode((await amqp.channel(other)).consume(q, () => {}), 405)
  await assertConnectionAlive(amqp, other)
}))

test('403: reserved amq. names and the default exchange', T, amqpTest(async (t, amqp) => {
  const conn = await amqp.connect()
  const q = amqp.name('reserved')
  await (await amqp.channel(conn)).assertQueue(q)
  await expectCode((await amqp.channel(conn)).assertExchange('amq.porter-test', 'direct'), 403)
  await expectCode((await amqp.channel(conn)).assertQueue('amq.porter-test'), 403)
  await expectCode((await amqp.channel(conn)).bindQueue(q, '', 'other'), 403)
  await expectCode((await amqp.channel(conn)).deleteExchange('amq.direct'), 403)
  await assertConnectionAlive(amqp, conn)
}))

test('406: ack of an unknown delivery tag closes the channel', T, amqpTest(async (t, amqp) => {
  const conn = await amqp.connect()
  const ch = await amqp.channel(conn)
  const closed = new Promise(resolve => ch.once('close', resolve))
  ch.ack({ fields: { deliveryTag: 42 } })
  await closed
  assert.equal(ch.lastError && ch.lastError.code, 406, `channel error: ${ch.lastError && ch.lastError.message}`)
  await assertConnectionAlive(amqp, conn)
}))

test('404: publish to a missing exchange closes the channel', T, amqpTest(async (t, amqp) => {
  const conn = await amqp.connect()
  const ch = await amqp.channel(conn, true)
  let confirmError = null
  ch.publish(amqp.exchange('missing'), 'k', Buffer.from('x'), {}, err => { confirmError = err })
  await new Promise(resolve => ch.once('close', resolve))
  assert.equal(ch.lastError && ch.lastError.code, 404)
  assert.ok(confirmError, 'the pending confirm fails')
  await assertConnectionAlive(amqp, conn)
}))

test('wrong password is refused (403 ACCESS_REFUSED)', T, amqpTest(async (t, amqp) => {
  const url = new URL(amqp.url)
  url.password = 'not-the-password'
  await assert.rejects(amqplib.connect(url.toString(), { timeout: 5000 }), err => {
    assert.match(err.message, /ACCESS_REFUSED|403/)
    return true
  })
  await assertConnectionAlive(amqp, await amqp.connect())
}))

test('unknown vhost is refused (connection.close instead of open-ok)', T, amqpTest(async (t, amqp) => {
  const url = new URL(amqp.url)
  url.pathname = '/no-such-vhost'
  // amqplib reports a connection.close during the handshake without its code ("Expected
  // ConnectionOpenOk; got <ConnectionClose channel:0>"); test_amqp_errors.py checks the 530.
  await assert.rejects(amqplib.connect(url.toString(), { timeout: 5000 }), err => {
    assert.match(err.message, /ConnectionClose|NOT_ALLOWED|530/)
    return true
  })
  await assertConnectionAlive(amqp, await amqp.connect())
}))
