#!lua
-- cross_bank.lua: the three steps of a transfer between two banks whose keys live on different
-- shards of a Redis Cluster. A cluster runs a script only on keys of one slot, and every key of a
-- bank carries the bank's hash tag ({B}), so a transfer from bank A to bank B cannot be one
-- script: it is three, each atomic on its own shard, each safe to repeat.
--
--   debit   on A's shard: checks the funds and debits the source account, moves A's balance and
--           its interbank position with B, records the transfer in A's outbox and its amount in
--           A's in-flight total, and appends a `debited` event (or a `cancelled` one, with
--           nothing moved, when the source cannot pay). Deduplicated by the producer's sequence,
--           like transfer.lua.
--   credit  on B's shard: credits the destination account, B's balance and its interbank
--           position with A, with a `credited` event; or, when the destination is unknown or
--           would overflow, moves nothing and appends a `rejected` event. Deduplicated by the
--           source bank and the transfer id in B's inbox, which keeps each transfer's answer.
--   settle  on A's shard: takes the transfer out of the outbox and the in-flight total, with a
--           `settled` event when it was credited, or refunds the source (balance, bank balance,
--           interbank position) with a `voided` event when it was rejected. A transfer no longer
--           in the outbox was settled already: nothing happens.
--
-- Money in flight is always visible: in A's outbox and in-flight total from the debit to the
-- settlement. Every step can be sent again after a lost reply or by the recovery pass, in any
-- number, and changes nothing the second time.
--
-- Each step takes a batch of n transfers (n = 1 and up) that share the bank whose shard runs it:
-- the debits of one source bank, the credits of one destination bank, the settlements of one
-- source bank. Like transfer.lua, a batch reads each account once, keeps running balances, and
-- writes each changed key once at the end (one sum per key): a batch costs Redis far less per
-- transfer than one call each. ARGV[1] names the step; the keys and the other arguments:
--   debit   KEYS  A's events, the producer's outcome string in A, A's balance, A's interbank
--                 hash, A's outbox, A's in-flight total, then the n source accounts
--           ARGV  'debit', producer id, first sequence, A, n, then per transfer: B, source IBAN,
--                 destination IBAN, amount
--           reply one letter per transfer: D debited (in flight), or F insufficient funds,
--                 U unknown source, A bad amount (cancelled, nothing moved)
--   credit  KEYS  B's events, B's inbox, B's balance, B's interbank hash, then the n
--                 destination accounts
--           ARGV  'credit', B, n, then per transfer: A, transfer id, source IBAN, destination
--                 IBAN, amount
--           reply per transfer: C credited, or U rejected: unknown destination, O rejected: it
--                 would overflow
--   settle  KEYS  A's events, A's outbox, A's in-flight total, A's balance, A's interbank hash,
--                 then the n source accounts
--           ARGV  'settle', A, n, then per transfer: B, transfer id, the credit's letter (C, U or
--                 O), source IBAN
--           reply per transfer: S settled, V voided (refunded), or N when settled already
-- A step that could not finish (a key of the wrong type, a denied command) undoes all its writes
-- and events and answers { code, message }: NOPERM, BADKEY or FAILED, as transfer.lua. A
-- malformed call is an error reply BADCALL; a first sequence past the producer's next one, SEQGAP.
--
-- An outbox entry is field = transfer id, value = 'B,source IBAN,destination IBAN,amount'; an
-- inbox entry is field = 'A|transfer id', value = the credit's letter.

local MAX_SAFE_CENTS = 9007199254740991
local MAX_BATCH = 8192
-- Fields per HMGET, HSET or HDEL: Lua unpacks at most some 8,000 values at once.
local FIELDS_PER_COMMAND = 1000
local CANONICAL = '^[1-9]%d*$'
local floor, find = math.floor, string.find

local function bad_call(why)
  return redis.error_reply('BADCALL interbank: malformed call: ' .. why)
end

-- An amount or sequence given as canonical decimal text, as a number; nil otherwise.
local function whole(text)
  local value = text and find(text, CANONICAL) and tonumber(text)
  if value and value <= MAX_SAFE_CENTS then return value end
  return nil
end

-- Why a command failed, as transfer.lua says it: NOPERM when the ACL user may not run it on that
-- key, else FAILED.
local function failure(command, key, err)
  local code = 'FAILED'
  if not redis.acl_check_cmd(command, key) then code = 'NOPERM' end
  return { code, command .. ' ' .. key .. ': ' .. err }
end

-- A balance key read as a number: false when missing, nil and why when it holds no integer.
local function read_balance(key)
  local raw = redis.pcall('GET', key)
  if type(raw) == 'table' then return nil, failure('GET', key, raw.err) end
  if not raw then return false end
  local value = tonumber(raw)
  if value == nil or value ~= floor(value) then
    return nil, { 'BADKEY', key .. ' holds ' .. raw .. ', not an integer balance' }
  end
  return value
end

-- An account's balance as this call has left it so far (read once, then kept in `balances`):
-- false when the account does not exist, or nil and why when it cannot be read.
local function running_balance(balances, key)
  local value = balances[key]
  if value ~= nil then return value end
  local why
  value, why = read_balance(key)
  if value ~= nil then balances[key] = value end
  return value, why
end

-- Appends an event; returns its entry id, or nil and why.
local function append(events_key, fields)
  local entry = redis.pcall('XADD', events_key, '*', unpack(fields))
  if type(entry) == 'table' then return nil, failure('XADD', events_key, entry.err) end
  return entry
end

-- The changes to make at the end, one sum per key (and hash field), in the order first met.
local function new_changes()
  return { list = {}, index = {} }
end

local function change(changes, command, key, field, delta)
  local slot = key .. '\0' .. (field or '')
  local i = changes.index[slot]
  if i then
    changes.list[i][4] = changes.list[i][4] + delta
  else
    changes.list[#changes.list + 1] = { command, key, field, delta }
    changes.index[slot] = #changes.list
  end
end

-- Removes the events this call appended (and the stream, if that leaves it empty, as it was).
local function undo_events(events_key, entries)
  for j = #entries, 1, -1 do
    redis.call('XDEL', events_key, entries[j])
  end
  if #entries > 0 and redis.call('XLEN', events_key) == 0 then
    redis.call('DEL', events_key)
  end
end

-- A hash command over many fields (HSET pairs, HDEL or HMGET names), FIELDS_PER_COMMAND at a
-- time; returns nil and why it failed, or the replies of HMGET in one list.
local function over_fields(command, key, values, per)
  local out = {}
  for start = 1, #values, FIELDS_PER_COMMAND * per do
    local last = math.min(#values, start + FIELDS_PER_COMMAND * per - 1)
    local reply = redis.pcall(command, key, unpack(values, start, last))
    if type(reply) == 'table' and reply.err then return nil, failure(command, key, reply.err) end
    if type(reply) == 'table' then
      -- HMGET: a missing field comes as false, so every field has its place.
      for _, v in ipairs(reply) do out[#out + 1] = v end
    end
  end
  return out
end

-- Makes the summed changes, then the final hash write. If any fails, the ones made are undone
-- and the call's events removed: the step is as if never sent. Returns nil, or { code, message }.
local function write_all(events_key, entries, changes, final)
  local made = 0
  local why
  for i, c in ipairs(changes.list) do
    local reply
    if c[3] then
      reply = redis.pcall(c[1], c[2], c[3], c[4])
    else
      reply = redis.pcall(c[1], c[2], c[4])
    end
    if type(reply) == 'table' then why = failure(c[1], c[2], reply.err) break end
    made = i
  end
  if not why and final then
    local _, failed = over_fields(final[1], final[2], final[3], final[4])
    why = failed
  end
  if not why then return nil end
  for i = made, 1, -1 do
    local c = changes.list[i]
    if c[3] then redis.call(c[1], c[2], c[3], -c[4]) else redis.call(c[1], c[2], -c[4]) end
  end
  undo_events(events_key, entries)
  return why
end

-- The batch size in ARGV[position], checked against the keys and arguments it implies.
local function batch_size(position, keys_before, values_each)
  local n = whole(ARGV[position])
  if not n or n > MAX_BATCH or #KEYS ~= keys_before + n or #ARGV ~= position + values_each * n then
    return nil
  end
  return n
end

local function debit()
  local n = batch_size(5, 6, 4)
  local first = whole(ARGV[3])
  if not n or not first then return bad_call('debit takes 6 + n keys and 5 + 4n arguments') end
  local events_key, producer_key, balance_key, interbank_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local outbox_key, in_flight_key = KEYS[5], KEYS[6]
  local producer, first_text, from_bank = ARGV[2], ARGV[3], ARGV[4]
  local applied = redis.call('STRLEN', producer_key)
  if first > applied + 1 then
    return redis.error_reply('SEQGAP interbank: sequence gap for producer ' .. producer .. ' in '
      .. producer_key .. ': expected at most ' .. (applied + 1) .. ', got ' .. first)
  end
  local replayed = math.min(applied - first + 1, n)
  local old = ''
  if replayed > 0 then old = redis.call('GETRANGE', producer_key, first - 1, first + replayed - 2) end
  if replayed == n then return old end

  local balance, entries, letters, outbox = {}, {}, {}, {}
  local changes = new_changes()
  for i = replayed + 1, n do
    local a = 5 + 4 * (i - 1)
    local to_bank, from, to, amount_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    if to_bank == from_bank then
      undo_events(events_key, entries)
      return bad_call('debit is for two banks')
    end
    local from_key = KEYS[6 + i]
    local from_balance, unreadable = running_balance(balance, from_key)
    if from_balance == nil then undo_events(events_key, entries) return unreadable end
    local id
    if i == 1 then id = producer .. '-' .. first_text else id = producer .. '-' .. (first + i - 1) end
    local amount = whole(amount_text)
    local letter, reason = 'D', nil
    if not amount then letter, reason = 'A', 'bad_amount'
    elseif not from_balance then letter, reason = 'U', 'unknown_account'
    elseif from_balance < amount then letter, reason = 'F', 'insufficient_funds' end
    local fields = { 'id', id, 'status', 'cancelled', 'from', from, 'to', to, 'from_bank', from_bank,
      'to_bank', to_bank, 'amount', amount_text }
    if letter == 'D' then
      fields[4] = 'debited'
      balance[from_key] = from_balance - amount
      fields[#fields + 1], fields[#fields + 2] = 'from_balance', from_balance - amount
      change(changes, 'INCRBY', from_key, false, -amount)
      change(changes, 'INCRBY', balance_key, false, -amount)
      change(changes, 'HINCRBY', interbank_key, to_bank, -amount)
      change(changes, 'INCRBY', in_flight_key, false, amount)
      outbox[#outbox + 1], outbox[#outbox + 2] = id, to_bank .. ',' .. from .. ',' .. to .. ',' .. amount_text
    else
      if from_balance then fields[#fields + 1], fields[#fields + 2] = 'from_balance', from_balance end
      fields[#fields + 1], fields[#fields + 2] = 'reason', reason
    end
    local entry, failed = append(events_key, fields)
    if not entry then undo_events(events_key, entries) return failed end
    entries[#entries + 1] = entry
    letters[#letters + 1] = letter
  end
  local final = nil
  if #outbox > 0 then final = { 'HSET', outbox_key, outbox, 2 } end
  local why = write_all(events_key, entries, changes, final)
  if why then return why end
  local fresh = table.concat(letters)
  redis.call('APPEND', producer_key, fresh)
  return old .. fresh
end

local function credit()
  local n = batch_size(3, 4, 5)
  if not n then return bad_call('credit takes 4 + n keys and 3 + 5n arguments') end
  local events_key, inbox_key, balance_key, interbank_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local to_bank = ARGV[2]
  local names = {}
  for i = 1, n do
    local a = 3 + 5 * (i - 1)
    names[i] = ARGV[a + 1] .. '|' .. ARGV[a + 2]
  end
  local answered, failed = over_fields('HMGET', inbox_key, names, 1)
  if not answered then return failed end
  local balance, entries, letters, inbox, decided = {}, {}, {}, {}, {}
  local changes = new_changes()
  for i = 1, n do
    local a = 3 + 5 * (i - 1)
    local from_bank, id, from, to, amount_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    local amount = whole(amount_text)
    if not amount or from_bank == to_bank then
      undo_events(events_key, entries)
      return bad_call('credit ' .. i .. ' has a bad amount or comes from its own bank')
    end
    local letter = answered[i] or decided[names[i]]
    if not letter then
      local to_key = KEYS[4 + i]
      local to_balance, unreadable = running_balance(balance, to_key)
      if to_balance == nil then undo_events(events_key, entries) return unreadable end
      local reason
      letter = 'C'
      if not to_balance then letter, reason = 'U', 'unknown_account'
      elseif to_balance + amount > MAX_SAFE_CENTS then letter, reason = 'O', 'overflow' end
      local fields = { 'id', id, 'status', 'credited', 'from', from, 'to', to, 'from_bank', from_bank,
        'to_bank', to_bank, 'amount', amount_text }
      if letter == 'C' then
        balance[to_key] = to_balance + amount
        fields[#fields + 1], fields[#fields + 2] = 'to_balance', to_balance + amount
        change(changes, 'INCRBY', to_key, false, amount)
        change(changes, 'INCRBY', balance_key, false, amount)
        change(changes, 'HINCRBY', interbank_key, from_bank, amount)
      else
        fields[4] = 'rejected'
        fields[#fields + 1], fields[#fields + 2] = 'reason', reason
      end
      local entry, why = append(events_key, fields)
      if not entry then undo_events(events_key, entries) return why end
      entries[#entries + 1] = entry
      decided[names[i]] = letter
      inbox[#inbox + 1], inbox[#inbox + 2] = names[i], letter
    end
    letters[#letters + 1] = letter
  end
  local final = nil
  if #inbox > 0 then final = { 'HSET', inbox_key, inbox, 2 } end
  local why = write_all(events_key, entries, changes, final)
  if why then return why end
  return table.concat(letters)
end

local function settle()
  local n = batch_size(3, 5, 4)
  if not n then return bad_call('settle takes 5 + n keys and 3 + 4n arguments') end
  local events_key, outbox_key, in_flight_key, balance_key, interbank_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  local from_bank = ARGV[2]
  local ids = {}
  for i = 1, n do ids[i] = ARGV[3 + 4 * (i - 1) + 2] end
  local pending, failed = over_fields('HMGET', outbox_key, ids, 1)
  if not pending then return failed end
  local balance, entries, letters, settled = {}, {}, {}, {}
  local changes = new_changes()
  for i = 1, n do
    local a = 3 + 4 * (i - 1)
    local to_bank, id, credit_letter, from = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local reason
    if credit_letter == 'U' then reason = 'unknown_account'
    elseif credit_letter == 'O' then reason = 'overflow'
    elseif credit_letter ~= 'C' then
      undo_events(events_key, entries)
      return bad_call('settle takes the letter C, U or O')
    end
    local value = pending[i]
    if not value or settled[id] then
      letters[#letters + 1] = 'N'
    else
      -- Read from the right: IBANs and amounts have no comma, a bank name may.
      local entry_to_bank, entry_from, to, amount_text = string.match(value, '^(.+),([^,]+),([^,]+),([^,]+)$')
      local amount = whole(amount_text)
      if entry_to_bank ~= to_bank or entry_from ~= from or not amount then
        undo_events(events_key, entries)
        return { 'BADKEY', outbox_key .. ' field ' .. id .. ' holds ' .. value .. ', not a transfer from '
          .. from .. ' to bank ' .. to_bank }
      end
      local fields = { 'id', id, 'status', 'settled', 'from', from, 'to', to, 'from_bank', from_bank,
        'to_bank', to_bank, 'amount', amount_text }
      change(changes, 'INCRBY', in_flight_key, false, -amount)
      if reason then
        local from_key = KEYS[5 + i]
        local from_balance, unreadable = running_balance(balance, from_key)
        if not from_balance then
          undo_events(events_key, entries)
          return unreadable or { 'BADKEY', from_key .. ' is missing: the refund of ' .. id .. ' has no account' }
        end
        balance[from_key] = from_balance + amount
        fields[4] = 'voided'
        fields[#fields + 1], fields[#fields + 2] = 'from_balance', from_balance + amount
        fields[#fields + 1], fields[#fields + 2] = 'reason', reason
        change(changes, 'INCRBY', from_key, false, amount)
        change(changes, 'INCRBY', balance_key, false, amount)
        change(changes, 'HINCRBY', interbank_key, to_bank, amount)
      end
      local entry, why = append(events_key, fields)
      if not entry then undo_events(events_key, entries) return why end
      entries[#entries + 1] = entry
      settled[id] = true
      if reason then letters[#letters + 1] = 'V' else letters[#letters + 1] = 'S' end
    end
  end
  local done = {}
  for id in pairs(settled) do done[#done + 1] = id end
  local final = nil
  if #done > 0 then final = { 'HDEL', outbox_key, done, 1 } end
  local why = write_all(events_key, entries, changes, final)
  if why then return why end
  return table.concat(letters)
end

local steps = { debit = debit, credit = credit, settle = settle }
local step = steps[ARGV[1]]
if not step then return bad_call('the first argument names no step') end
return step()
