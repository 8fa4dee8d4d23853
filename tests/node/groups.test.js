'use strict'
// Two consumers of one group split a 3-partition topic; when one leaves, the other takes all three.
// describeGroups / listGroups show the group; deleteGroups refuses while it has members and works
// once it is empty.

const test = require('node:test')
const assert = require('node:assert/strict')
const { AssignerProtocol } = require('kafkajs')
const { kafkaFor, porterTest, waitFor } = require('./porter')

const TOPIC = 'events'
const GROUP = 'event-workers'
const PARTITIONS = 3

// A consumer that records its latest assignment (from GROUP_JOIN) and the messages it received.
async function startMember (kafka, porter, name) {
  const consumer = kafka.consumer({ groupId: GROUP, heartbeatInterval: 300, sessionTimeout: 10_000, rebalanceTimeout: 10_000, maxWaitTimeInMs: 500 })
  const member = { name, consumer, assigned: [], joins: 0, received: [], memberId: null }
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    member.joins += 1
    member.memberId = payload.memberId
    member.assigned = [...(payload.memberAssignment[TOPIC] || [])].sort((a, b) => a - b)
  })
  await consumer.connect()
  porter.defer(() => consumer.disconnect())
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      member.received.push({ partition, value: message.value.toString() })
    }
  })
  return member
}

async function produceToEachPartition (producer, tag) {
  const messages = []
  for (let p = 0; p < PARTITIONS; p++) messages.push({ partition: p, value: `${tag}-p${p}` })
  await producer.send({ topic: TOPIC, messages })
}

function decodeAssignment (buffer) {
  const decoded = AssignerProtocol.MemberAssignment.decode(buffer)
  return [...((decoded && decoded.assignment[TOPIC]) || [])].sort((a, b) => a - b)
}

test('two consumers split partitions, the survivor takes over; describe/list/delete groups', { timeout: 90_000 },
  porterTest(async (t, porter) => {
    const kafka = kafkaFor(porter)
    const admin = kafka.admin()
    await admin.connect()
    porter.defer(() => admin.disconnect())
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true })
    const producer = kafka.producer()
    await producer.connect()
    porter.defer(() => producer.disconnect())

    const a = await startMember(kafka, porter, 'a')
    await waitFor('a assigned all partitions', () => a.assigned.length === PARTITIONS)
    const b = await startMember(kafka, porter, 'b')
    await waitFor('a and b split the partitions', () =>
      a.assigned.length > 0 && b.assigned.length > 0 &&
      [...a.assigned, ...b.assigned].sort().join() === '0,1,2' &&
      a.memberId !== b.memberId, 30_000)
    // the group is stable: no further rebalance for a moment, assignments unchanged
    const split = { a: a.assigned.join(), b: b.assigned.join() }

    // each consumer gets exactly the messages of its own partitions
    await produceToEachPartition(producer, 'split')
    await waitFor('3 messages across a and b', () => a.received.length + b.received.length >= PARTITIONS)
    assert.equal(a.assigned.join(), split.a)
    assert.equal(b.assigned.join(), split.b)
    for (const m of a.received) assert.ok(a.assigned.includes(m.partition), `a got partition ${m.partition}, owns ${a.assigned}`)
    for (const m of b.received) assert.ok(b.assigned.includes(m.partition), `b got partition ${m.partition}, owns ${b.assigned}`)
    assert.equal(a.received.length + b.received.length, PARTITIONS)

    const { groups: [described] } = await admin.describeGroups([GROUP])
    assert.equal(described.groupId, GROUP)
    assert.equal(described.errorCode, 0)
    assert.equal(described.state, 'Stable')
    assert.equal(described.protocolType, 'consumer')
    assert.equal(described.protocol, 'RoundRobinAssigner')
    assert.equal(described.members.length, 2)
    const byId = Object.fromEntries(described.members.map(m => [m.memberId, m]))
    assert.deepEqual(Object.keys(byId).sort(), [a.memberId, b.memberId].sort())
    assert.deepEqual(decodeAssignment(byId[a.memberId].memberAssignment), a.assigned)
    assert.deepEqual(decodeAssignment(byId[b.memberId].memberAssignment), b.assigned)
    for (const m of described.members) {
      assert.equal(m.clientId, 'porter-node-e2e')
      assert.ok(m.clientHost.length > 0, `clientHost of ${JSON.stringify(m)}`)
    }

    const listed = await admin.listGroups()
    assert.deepEqual(listed.groups.filter(g => g.groupId === GROUP), [{ groupId: GROUP, protocolType: 'consumer' }])

    // a non-empty group cannot be deleted
    await assert.rejects(admin.deleteGroups([GROUP]), err => {
      assert.equal(err.name, 'KafkaJSDeleteGroupsError', err.stack)
      assert.equal(err.groups.length, 1)
      assert.equal(err.groups[0].groupId, GROUP)
      assert.equal(err.groups[0].errorCode, 68, `expected NON_EMPTY_GROUP, got ${JSON.stringify(err.groups[0])}`)
      return true
    })

    // b leaves (LeaveGroup): a is told to rejoin and gets all three partitions
    const joinsBefore = a.joins
    await b.consumer.disconnect()
    await waitFor('a reassigned all partitions after b left', () => a.joins > joinsBefore && a.assigned.join() === '0,1,2', 30_000)
    const receivedBefore = a.received.length
    await produceToEachPartition(producer, 'after-leave')
    await waitFor('a receives from all 3 partitions', () => a.received.length >= receivedBefore + PARTITIONS)
    assert.deepEqual(a.received.slice(receivedBefore).map(m => m.value).sort(), ['after-leave-p0', 'after-leave-p1', 'after-leave-p2'])
    const { groups: [alone] } = await admin.describeGroups([GROUP])
    assert.equal(alone.state, 'Stable')
    assert.deepEqual(alone.members.map(m => m.memberId), [a.memberId])

    // empty group: describe says Empty, delete works, then the group is gone
    await a.consumer.disconnect()
    const { groups: [empty] } = await admin.describeGroups([GROUP])
    assert.equal(empty.state, 'Empty')
    assert.deepEqual(empty.members, [])
    const deleted = await admin.deleteGroups([GROUP])
    assert.deepEqual(deleted.map(g => ({ groupId: g.groupId, errorCode: g.errorCode })), [{ groupId: GROUP, errorCode: 0 }])
    assert.deepEqual((await admin.listGroups()).groups.filter(g => g.groupId === GROUP), [])
    const { groups: [dead] } = await admin.describeGroups([GROUP])
    assert.equal(dead.state, 'Dead')
    const [{ partitions }] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
    assert.deepEqual(partitions.map(p => p.offset), ['-1', '-1', '-1'], 'deleted group has no committed offsets')
  }))
