'use strict'
// Porter's chat-room example: MQTT 5 over WebSocket from the browser (mqtt.js, vendored beside
// this file). Topics:
//   chat/rooms/<room>             a room's messages (QoS 1); Porter also keeps them in a Kafka
//                                 topic, and a page that joins reads the room's last HISTORY
//                                 from it: GET /chat/history/<room>
//   chat/users/<name>/inbox       direct messages to <name>
//   chat/presence/<name>          retained "online" on connect; the last will sets "offline"
// Messages are JSON: { id, from, text, ts }.
;(() => {
  const HISTORY = 50
  const KEPT = 500
  const NAME = /^[A-Za-z0-9_.-]{1,32}$/
  const $ = id => document.getElementById(id)
  const state = {
    name: null,
    client: null,
    current: null, // { kind: 'room' | 'dm', id }
    rooms: new Map(), // room -> conversation
    dms: new Map(), // user -> conversation
    people: new Map() // user -> 'online' | 'offline'
  }

  function conversation (kind, id) {
    const map = kind === 'room' ? state.rooms : state.dms
    if (!map.has(id)) map.set(id, { messages: [], seen: new Set(), unread: 0 })
    return map.get(id)
  }

  const isCurrent = (kind, id) => state.current && state.current.kind === kind && state.current.id === id

  function add (kind, id, msg, history) {
    if (!msg || typeof msg.id !== 'string' || typeof msg.text !== 'string') return
    const c = conversation(kind, id)
    if (c.seen.has(msg.id)) return
    c.seen.add(msg.id)
    c.messages.push({ ...msg, history })
    c.messages.sort((a, b) => a.ts - b.ts)
    if (c.messages.length > KEPT) {
      for (const old of c.messages.splice(0, c.messages.length - KEPT)) c.seen.delete(old.id)
    }
    if (isCurrent(kind, id)) renderMessages()
    else if (!history) c.unread += 1
    renderSidebar()
  }

  function parse (payload) {
    try { return JSON.parse(new TextDecoder().decode(payload)) } catch { return null }
  }

  function onMessage (topic, payload) {
    const parts = topic.split('/')
    if (parts[0] !== 'chat') return
    if (parts[1] === 'presence' && parts.length === 3) {
      const text = new TextDecoder().decode(payload)
      if (text === '') state.people.delete(parts[2])
      else state.people.set(parts[2], text === 'online' ? 'online' : 'offline')
      renderSidebar()
    } else if (parts[1] === 'rooms' && parts.length === 3) {
      add('room', parts[2], parse(payload), false)
    } else if (parts[1] === 'users' && parts[2] === state.name && parts[3] === 'inbox') {
      const msg = parse(payload)
      if (msg && NAME.test(msg.from || '')) add('dm', msg.from, msg, false)
    }
  }

  // Subscribed first, then the history read: a message sent in between comes both ways and
  // is shown once (by id).
  function subscribeRoom (room) {
    state.client.subscribe({ [`chat/rooms/${room}`]: { qos: 1 } }, err => {
      if (!err) loadHistory(room)
    })
  }

  async function loadHistory (room) {
    try {
      const res = await fetch(`history/${encodeURIComponent(room)}?limit=${HISTORY}`)
      if (!res.ok) return // history off, or not bridged yet: live messages still come
      const { messages } = await res.json()
      for (const m of messages) add('room', room, parse(new TextEncoder().encode(m.payload)), true)
    } catch {}
  }

  function joinRoom (room) {
    const known = state.rooms.has(room)
    conversation('room', room)
    if (!known && state.client && state.client.connected) subscribeRoom(room)
    open('room', room)
  }

  function open (kind, id) {
    state.current = { kind, id }
    conversation(kind, id).unread = 0
    $('title').textContent = kind === 'room' ? `# ${id}` : `@ ${id}`
    $('text').placeholder = kind === 'room' ? `Message #${id}` : `Message ${id}`
    renderSidebar()
    renderMessages()
    $('text').focus()
  }

  function send (text) {
    const { kind, id } = state.current
    const msg = { id: crypto.randomUUID(), from: state.name, text, ts: Date.now() }
    if (kind === 'room') {
      state.client.publish(`chat/rooms/${id}`, JSON.stringify(msg), { qos: 1 })
    } else {
      state.client.publish(`chat/users/${id}/inbox`, JSON.stringify(msg), { qos: 1 })
      add('dm', id, msg, false)
    }
  }

  function item (label, { active, state: presence, unread, data }) {
    const li = document.createElement('li')
    if (active) li.classList.add('active')
    if (presence) {
      li.dataset.state = presence
      const dot = document.createElement('span')
      dot.className = 'dot'
      li.append(dot)
    }
    for (const [k, v] of Object.entries(data)) li.dataset[k] = v
    const name = document.createElement('span')
    name.textContent = label
    li.append(name)
    if (unread) {
      const badge = document.createElement('span')
      badge.className = 'unread'
      badge.textContent = String(unread)
      li.append(badge)
    }
    return li
  }

  function renderSidebar () {
    const rooms = $('rooms')
    rooms.replaceChildren(...[...state.rooms.entries()].map(([room, c]) => {
      const li = item(`# ${room}`, { active: isCurrent('room', room), unread: c.unread, data: { room } })
      li.onclick = () => open('room', room)
      return li
    }))
    const names = new Set([...state.people.keys(), ...state.dms.keys()])
    names.delete(state.name)
    const people = $('people')
    people.replaceChildren(...[...names].sort().map(user => {
      const c = state.dms.get(user)
      const li = item(user, {
        active: isCurrent('dm', user),
        state: state.people.get(user) || 'offline',
        unread: c ? c.unread : 0,
        data: { user }
      })
      li.onclick = () => open('dm', user)
      return li
    }))
  }

  function renderMessages () {
    const list = $('messages')
    const { kind, id } = state.current
    const c = conversation(kind, id)
    const rows = c.messages.map(m => {
      const li = document.createElement('li')
      li.className = 'msg' + (m.from === state.name ? ' mine' : '') + (m.history ? ' history' : '')
      li.dataset.from = m.from
      const meta = document.createElement('div')
      meta.className = 'meta'
      const from = document.createElement('span')
      from.className = 'from'
      from.textContent = m.from
      const time = document.createElement('time')
      time.textContent = new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
      meta.append(from, time)
      const text = document.createElement('div')
      text.className = 'text'
      text.textContent = m.text
      li.append(meta, text)
      return li
    })
    if (rows.length === 0) {
      const li = document.createElement('li')
      li.className = 'notice'
      li.textContent = kind === 'room' ? 'No messages yet. Say hello!' : `Direct messages with ${id}`
      rows.push(li)
    }
    list.replaceChildren(...rows)
    list.scrollTop = list.scrollHeight
  }

  function setStatus (text, online) {
    const status = $('status')
    status.textContent = text
    status.classList.toggle('online', online)
  }

  function connect (name, room) {
    state.name = name
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const client = mqtt.connect(`${scheme}//${location.host}/mqtt`, {
      protocolVersion: 5,
      clientId: `chat-${name}-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: 10000,
      will: { topic: `chat/presence/${name}`, payload: 'offline', qos: 1, retain: true }
    })
    state.client = client
    client.on('connect', () => {
      setStatus('online', true)
      client.publish(`chat/presence/${name}`, 'online', { qos: 1, retain: true })
      client.subscribe({
        'chat/presence/+': { qos: 1 },
        [`chat/users/${name}/inbox`]: { qos: 1 }
      })
      for (const r of state.rooms.keys()) subscribeRoom(r)
    })
    client.on('message', onMessage)
    client.on('reconnect', () => setStatus('reconnecting', false))
    client.on('offline', () => setStatus('offline', false))
    client.on('error', e => setStatus(`error: ${e.message}`, false))
    $('me').textContent = name
    $('join-view').hidden = true
    $('chat-view').hidden = false
    joinRoom(room)
  }

  $('join-form').addEventListener('submit', e => {
    e.preventDefault()
    const name = $('name').value.trim()
    const room = $('room').value.trim()
    if (!NAME.test(name) || !NAME.test(room)) {
      $('join-error').textContent = 'Names and rooms: letters, digits, _ . - (up to 32).'
      $('join-error').hidden = false
      return
    }
    try { localStorage.setItem('porter-chat-name', name) } catch {}
    connect(name, room)
  })
  $('room-form').addEventListener('submit', e => {
    e.preventDefault()
    const room = $('new-room').value.trim()
    if (NAME.test(room)) joinRoom(room)
    $('new-room').value = ''
  })
  $('send-form').addEventListener('submit', e => {
    e.preventDefault()
    const text = $('text').value.trim()
    if (text && state.current && state.client && state.client.connected) {
      send(text)
      $('text').value = ''
    }
  })
  try { $('name').value = localStorage.getItem('porter-chat-name') || '' } catch {}
  const room = decodeURIComponent(location.hash.slice(1))
  if (NAME.test(room)) $('room').value = room
})()
