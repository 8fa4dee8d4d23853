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

// Starts a re-authentication (AUTH 0x19, MQTT 5 §4.12.1) on a connected client. MQTT.js answers
// the broker's AUTH through `handleAuth` but has no call that starts a re-authentication, so
// the AUTH goes out through the client's own packet writer (mqtt-packet encodes it). Resolves
// with the broker's final AUTH, or with the DISCONNECT that ended the connection.
function reauthenticate (client, user, password) {
  const scram = scramClient(user, password)
  return new Promise(resolve => {
    client.once('disconnect', packet => resolve({ disconnect: packet }))
    client.handleAuth = (packet, callback) => {
      const data = packet.properties.authenticationData.toString()
      if (packet.reasonCode === 0x18) {
        callback(null, {
          cmd: 'auth',
          reasonCode: 0x18,
          properties: { authenticationMethod: METHOD, authenticationData: scram.final(data) }
        })
      } else {
        callback(null)
        resolve({ success: packet, verified: scram.verify(data) })
      }
    }
    client._sendPacket({
      cmd: 'auth',
      reasonCode: 0x19,
      properties: { authenticationMethod: METHOD, authenticationData: scram.first }
    })
  })
}

test('MQTT 5 re-authentication proves the password again on the open connection',
  { timeout: 60_000 }, porterTest(async (t, porter) => {
    await api(porter, 'PUT', '/api/users/sensor', { password: 'sensor-pw', tags: '' })
    await api(porter, 'PUT', '/api/permissions/%2F/sensor', { configure: '.*', write: '.*', read: '.*' })
    const { client } = await connectScram(porter, 'sensor', 'sensor-pw')
    await client.subscribeAsync('plant/#', { qos: 1 })

    const renewed = await reauthenticate(client, 'sensor', 'sensor-pw')
    assert.equal(renewed.success?.reasonCode, 0, 'AUTH 0x00 ends the re-authentication')
    assert.ok(renewed.verified, 'the broker proved again that it knows the password')
    // The session is the same one: the subscription still delivers.
    const got = new Promise(resolve => client.once('message', (topic, payload) => resolve(payload.toString())))
    await client.publishAsync('plant/temp', '22.0', { qos: 1 })
    assert.equal(await got, '22.0')

    // The password changes; a re-authentication with the old one ends the connection.
    await api(porter, 'PUT', '/api/users/sensor', { password: 'rotated-pw', tags: '' })
    const refused = await reauthenticate(client, 'sensor', 'sensor-pw')
    assert.equal(refused.disconnect?.reasonCode, 0x87, 'DISCONNECT 0x87 not authorized')

    // A client that logged in with a password has no method to re-authenticate with.
    const plain = await mqtt.connectAsync(porter.mqttUrl, {
      protocolVersion: 5, reconnectPeriod: 0, username: 'sensor', password: 'rotated-pw'
    })
    porter.defer(() => plain.endAsync())
    const protocol = await reauthenticate(plain, 'sensor', 'rotated-pw')
    assert.equal(protocol.disconnect?.reasonCode, 0x82, 'DISCONNECT 0x82 protocol error')
  }, OPTIONS))
