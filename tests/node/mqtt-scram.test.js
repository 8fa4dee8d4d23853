'use strict'
// MQTT 5 enhanced authentication with SCRAM-SHA-256 (issue 18 §2), driven by MQTT.js's own AUTH
// support (`authenticationMethod`, `handleAuth`): CONNECT carries the client-first message, the
// broker answers AUTH with its first message, the client's AUTH carries the proof, and CONNACK
// carries the server's signature, which the client checks. A wrong password is refused with
// CONNACK 0x87 and an unknown method with 0x8C.

const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const mqtt = require('mqtt')
const { porterTest } = require('./porter')

const OPTIONS = { http: true, mqtt: true }
const WAIT_MS = 10_000
const METHOD = 'SCRAM-SHA-256'

const hmac = (key, text) => crypto.createHmac('sha256', key).update(text).digest()
const sha256 = data => crypto.createHash('sha256').update(data).digest()

// The client side of RFC 5802 with SHA-256, as any SCRAM client library computes it.
function scramClient (user, password) {
  const nonce = crypto.randomBytes(18).toString('base64')
  const bare = `n=${user},r=${nonce}`
  const state = {}
  return {
    first: Buffer.from(`n,,${bare}`),
    final (serverFirst) {
      const fields = Object.fromEntries(serverFirst.split(',').map(f => [f[0], f.slice(2)]))
      assert.ok(fields.r.startsWith(nonce), 'the server extends the client nonce')
      const salted = crypto.pbkdf2Sync(password, Buffer.from(fields.s, 'base64'), Number(fields.i), 32, 'sha256')
      const clientKey = hmac(salted, 'Client Key')
      const withoutProof = `c=biws,r=${fields.r}`
      state.authMessage = `${bare},${serverFirst},${withoutProof}`
      state.serverKey = hmac(salted, 'Server Key')
      const signature = hmac(sha256(clientKey), state.authMessage)
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]))
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`)
    },
    verify (serverFinal) {
      return serverFinal === `v=${hmac(state.serverKey, state.authMessage).toString('base64')}`
    }
  }
}

async function api (porter, method, path, body) {
  const response = await fetch(`http://127.0.0.1:${porter.httpPort}${path}`, {
    method,
    headers: { authorization: 'Basic ' + Buffer.from('guest:guest').toString('base64'), 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  assert.ok(response.ok, `${method} ${path}: ${response.status}`)
}

// Connects with SCRAM; resolves with the CONNACK, or rejects with the client's error.
function connectScram (porter, user, password, method = METHOD) {
  const scram = scramClient(user, password)
  const client = mqtt.connect(porter.mqttUrl, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    manualConnect: true,
    clientId: `scram-${crypto.randomBytes(3).toString('hex')}`,
    properties: { authenticationMethod: method, authenticationData: scram.first }
  })
  client.handleAuth = (packet, callback) => {
    const serverFirst = packet.properties.authenticationData.toString()
    callback(null, {
      cmd: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: method, authenticationData: scram.final(serverFirst) }
    })
  }
  porter.defer(() => client.endAsync())
  return new Promise((resolve, reject) => {
    client.once('connect', connack => resolve({ client, connack, scram }))
    client.once('error', reject)
    client.connect()
  })
}

test('MQTT 5 SCRAM-SHA-256 enhanced authentication logs a user in, both sides proven',
  { timeout: 60_000 }, porterTest(async (t, porter) => {
    await api(porter, 'PUT', '/api/users/sensor', { password: 'sensor-pw', tags: '' })
    await api(porter, 'PUT', '/api/permissions/%2F/sensor', { configure: '.*', write: '.*', read: '.*' })

    const { client, connack, scram } = await connectScram(porter, 'sensor', 'sensor-pw')
    assert.equal(connack.properties.authenticationMethod, METHOD)
    assert.ok(scram.verify(connack.properties.authenticationData.toString()), 'the server proved it knows the password')
    await client.subscribeAsync('plant/#', { qos: 1 })
    const got = new Promise(resolve => client.once('message', (topic, payload) => resolve([topic, payload.toString()])))
    await client.publishAsync('plant/temp', '21.5', { qos: 1 })
    assert.deepEqual(await got, ['plant/temp', '21.5'])

    await assert.rejects(connectScram(porter, 'sensor', 'wrong-pw'), err => err.code === 135)
    await assert.rejects(connectScram(porter, 'sensor', 'sensor-pw', 'KERBEROS'), err => err.code === 140)
  }, OPTIONS))
