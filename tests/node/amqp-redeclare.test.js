'use strict'
// One queue and one exchange declared by three client libraries in turn, as services written in
// different languages do. Each library encodes the same integers differently: amqplib picks the
// narrowest signed type (5000 is a `short`, 10 a `byte`), pika always a 32-bit `signedint`, lapin
// what its user wrote (here a 64-bit `long`, an `unsignedbyte`, an `unsignedint`). RabbitMQ
// compares the arguments by value, so every re-declare must succeed; a truly different value must
// be refused with RabbitMQ's own text (asserted in full, so it also holds against a real RabbitMQ
// with AMQP_TEST_URL).
//
// pika runs from the suite's venv (PORTER_PYTHON, default <repo>/.venv/bin/python, which
// scripts/test.sh builds first); lapin from crates/server/examples/amqp_redeclare.rs, built with
// cargo on first use.

const test = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { promisify } = require('node:util')
const { amqpTest } = require('./amqp')
const { REPO_ROOT } = require('./porter')

const PYTHON = process.env.PORTER_PYTHON || path.join(REPO_ROOT, '.venv', 'bin', 'python')
// The first run may compile the lapin example.
const T = { timeout: 300_000 }

// Declares as pika would, then declares the queue again without x-message-ttl (which must be
// refused); prints {"same": "ok" | error, "refused": [code, text]}.
const PIKA = `
import json, sys
import pika, pika.exceptions

url, queue, exchange = sys.argv[1:4]
arguments = {
    "x-message-ttl": 5000,
    "x-max-length": 10,
    "x-max-length-bytes": 1 << 20,
    "x-max-priority": 5,
    "x-dead-letter-exchange": "dlx",
    "x-overflow": "reject-publish",
    "x-declared-by": "pika",  # not compared by RabbitMQ: may differ
}
connection = pika.BlockingConnection(pika.URLParameters(url))
try:
    ch = connection.channel()
    # bytes: pika sends a byte array ('x'), which RabbitMQ compares equal to amqplib's longstr
    ch.exchange_declare(exchange, "topic", durable=True, arguments={"alternate-exchange": b"ae"})
    ch.queue_declare(queue, durable=True, arguments=arguments)
    same = "ok"
except pika.exceptions.AMQPError as e:
    same = repr(e)
ch = connection.channel()
del arguments["x-message-ttl"]
try:
    ch.queue_declare(queue, durable=True, arguments=arguments)
    refused = [0, ""]
except pika.exceptions.ChannelClosedByBroker as e:
    refused = [e.reply_code, e.reply_text]
connection.close()
print(json.dumps({"same": same, "refused": refused}))
`

async function run (file, args, options = {}) {
  try {
    const { stdout } = await promisify(execFile)(file, args, { maxBuffer: 1 << 20, ...options })
    return JSON.parse(stdout.trim().split('\n').pop())
  } catch (err) {
    assert.fail(`${file} ${args.join(' ')}: ${err.message}\n${err.stderr || ''}`)
  }
}

test('amqplib, pika and lapin declare the same queue and exchange, each with its own integer types', T,
  amqpTest(async (t, amqp) => {
    const q = amqp.name('shared')
    const ex = amqp.exchange('shared')
    const vhost = decodeURIComponent(new URL(amqp.url).pathname.slice(1)) || '/'
    const amqplibArguments = {
      'x-message-ttl': 5000, // short
      'x-max-length': 10, // byte
      'x-max-length-bytes': 1 << 20, // signedint
      'x-max-priority': 5, // byte
      'x-dead-letter-exchange': 'dlx',
      'x-overflow': 'reject-publish',
      'x-declared-by': 'amqplib'
    }
    const declare = async args => {
      const ch = await amqp.channel()
      await ch.assertExchange(ex, 'topic', { durable: true, alternateExchange: 'ae' })
      await ch.assertQueue(q, { durable: true, arguments: args })
    }
    await declare(amqplibArguments)

    const pika = await run(PYTHON, ['-c', PIKA, amqp.url, q, ex])
    assert.equal(pika.same, 'ok')
    assert.deepEqual(pika.refused, [406,
      `PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '${q}' in vhost '${vhost}': ` +
      "received none but current is the value '5000' of type 'short'"])

    const lapin = await run('cargo', ['run', '-q', '-p', 'porter', '--example', 'amqp_redeclare', '--',
      amqp.url, q, ex], { cwd: REPO_ROOT })
    assert.equal(lapin.same, 'ok')
    assert.deepEqual(lapin.refused, [406,
      `PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '${ex}' in vhost '${vhost}': ` +
      "received 'other' but current is 'ae'"])

    // amqplib again, after both, and then a value that really differs.
    await declare(amqplibArguments)
    await assert.rejects(declare({ ...amqplibArguments, 'x-message-ttl': 6000 }), err => {
      assert.equal(err.code, 406)
      assert.ok(err.message.includes(
        `PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '${q}' in vhost '${vhost}': ` +
        "received '6000' but current is '5000'"), err.message)
      return true
    })
    // The properties: durable, then exclusive (405, checked first).
    const refusedWith = async (options, code, text) => {
      const ch = await amqp.channel()
      await assert.rejects(ch.assertQueue(q, { arguments: amqplibArguments, ...options }), err => {
        assert.equal(err.code, code)
        assert.ok(err.message.includes(text), err.message)
        return true
      })
    }
    await refusedWith({ durable: false }, 406,
      `PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${q}' in vhost '${vhost}': ` +
      "received 'false' but current is 'true'")
    await refusedWith({ durable: false, exclusive: true }, 405,
      // (the rest of RabbitMQ's sentence is cut at the 255 bytes a reply text holds)
      `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${q}' in vhost '${vhost}'. ` +
      'It could be originally declared on another connection')
  }))
