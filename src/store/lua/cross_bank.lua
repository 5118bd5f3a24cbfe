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
-- ARGV[1] names the step; the keys and the other arguments of each:
--   debit   KEYS  A's events, the producer's outcome string in A, A's balance, A's interbank
--                 hash, A's outbox, A's in-flight total, the source account
--           ARGV  'debit', producer id, sequence, A, B, source IBAN, destination IBAN, amount
--           reply one letter: D debited (in flight), or F insufficient funds, U unknown source,
--                 A bad amount (cancelled, nothing moved)
--   credit  KEYS  B's events, B's inbox, B's balance, B's interbank hash, the destination account
--           ARGV  'credit', A, B, transfer id, source IBAN, destination IBAN, amount
--           reply C credited, or U rejected: unknown destination, O rejected: it would overflow
--   settle  KEYS  A's events, A's outbox, A's in-flight total, the source account, A's balance,
--                 A's interbank hash
--           ARGV  'settle', A, B, transfer id, the credit's letter (C, U or O)
--           reply S settled, V voided (refunded), or N when it was settled already
-- A step that could not finish (a key of the wrong type, a denied command) undoes its writes and
-- answers { code, message }: NOPERM, BADKEY or FAILED, as transfer.lua. A malformed call is an
-- error reply BADCALL; a sequence past the producer's next one, SEQGAP.
--
-- An outbox entry is field = transfer id, value = 'B,source IBAN,destination IBAN,amount'; an
-- inbox entry is field = 'A|transfer id', value = the credit's letter.

local MAX_SAFE_CENTS = 9007199254740991
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

-- Appends an event; returns its entry id, or nil and why.
local function append(events_key, fields)
  local entry = redis.pcall('XADD', events_key, '*', unpack(fields))
  if type(entry) == 'table' then return nil, failure('XADD', events_key, entry.err) end
  return entry
end

-- Makes the writes, five values each: command, key, field (false for INCRBY), change, and the
-- change that undoes it; then the final hash write, which has no number to undo. If any fails,
-- the ones made are undone and the event removed: the step is as if never sent. Returns nil, or
-- { code, message }.
local function write_all(events_key, entry, writes, final)
  local made = 0
  local why
  for w = 1, #writes, 5 do
    local reply
    if writes[w + 2] then
      reply = redis.pcall(writes[w], writes[w + 1], writes[w + 2], writes[w + 3])
    else
      reply = redis.pcall(writes[w], writes[w + 1], writes[w + 3])
    end
    if type(reply) == 'table' then why = failure(writes[w], writes[w + 1], reply.err) break end
    made = w
  end
  if not why then
    local reply = redis.pcall(unpack(final))
    if type(reply) == 'table' then why = failure(final[1], final[2], reply.err) end
  end
  if not why then return nil end
  for u = made, 1, -5 do
    if writes[u + 2] then
      redis.call(writes[u], writes[u + 1], writes[u + 2], writes[u + 4])
    else
      redis.call(writes[u], writes[u + 1], writes[u + 4])
    end
  end
  redis.call('XDEL', events_key, entry)
  return why
end

local function debit()
  local events_key, producer_key, balance_key, interbank_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
  local outbox_key, in_flight_key, from_key = KEYS[5], KEYS[6], KEYS[7]
  local producer, seq_text, from_bank, to_bank = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local from, to, amount_text = ARGV[6], ARGV[7], ARGV[8]
  local seq = whole(seq_text)
  if #KEYS ~= 7 or #ARGV ~= 8 or not seq then return bad_call('debit takes 7 keys and 8 arguments') end
  if from_bank == to_bank then return bad_call('debit is for two banks') end
  local applied = redis.call('STRLEN', producer_key)
  if seq > applied + 1 then
    return redis.error_reply('SEQGAP interbank: sequence gap for producer ' .. producer .. ' in '
      .. producer_key .. ': expected at most ' .. (applied + 1) .. ', got ' .. seq)
  end
  if seq <= applied then return redis.call('GETRANGE', producer_key, seq - 1, seq - 1) end

  local id = producer .. '-' .. seq_text
  local amount = whole(amount_text)
  local balance, why = read_balance(from_key)
  if balance == nil then return why end
  local letter, reason
  if not amount then letter, reason = 'A', 'bad_amount'
  elseif not balance then letter, reason = 'U', 'unknown_account'
  elseif balance < amount then letter, reason = 'F', 'insufficient_funds'
  else letter = 'D' end

  local fields = { 'id', id }
  if letter == 'D' then
    fields[3], fields[4] = 'status', 'debited'
  else
    fields[3], fields[4] = 'status', 'cancelled'
  end
  for _, pair in ipairs({ { 'from', from }, { 'to', to }, { 'from_bank', from_bank },
      { 'to_bank', to_bank }, { 'amount', amount_text } }) do
    fields[#fields + 1], fields[#fields + 2] = pair[1], pair[2]
  end
  if letter == 'D' then
    fields[#fields + 1], fields[#fields + 2] = 'from_balance', balance - amount
  elseif balance then
    fields[#fields + 1], fields[#fields + 2] = 'from_balance', balance
  end
  if reason then fields[#fields + 1], fields[#fields + 2] = 'reason', reason end
  local entry, failed = append(events_key, fields)
  if not entry then return failed end

  if letter == 'D' then
    local minus = '-' .. amount_text
    local writes = {
      'INCRBY', from_key, false, minus, amount_text,
      'INCRBY', balance_key, false, minus, amount_text,
      'HINCRBY', interbank_key, to_bank, minus, amount_text,
      'INCRBY', in_flight_key, false, amount_text, minus,
    }
    local entry_value = to_bank .. ',' .. from .. ',' .. to .. ',' .. amount_text
    why = write_all(events_key, entry, writes, { 'HSET', outbox_key, id, entry_value })
    if why then return why end
  end
  redis.call('APPEND', producer_key, letter)
  return letter
end

local function credit()
  local events_key, inbox_key, balance_key, interbank_key, to_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
  local from_bank, to_bank, id, from, to, amount_text = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  local amount = whole(amount_text)
  if #KEYS ~= 5 or #ARGV ~= 7 or not amount then return bad_call('credit takes 5 keys and 7 arguments') end
  local field = from_bank .. '|' .. id
  local answered = redis.call('HGET', inbox_key, field)
  if answered then return answered end

  local balance, why = read_balance(to_key)
  if balance == nil then return why end
  local letter, reason = 'C', nil
  if not balance then letter, reason = 'U', 'unknown_account'
  elseif balance + amount > MAX_SAFE_CENTS then letter, reason = 'O', 'overflow' end
  local fields = { 'id', id, 'status', 'credited', 'from', from, 'to', to, 'from_bank', from_bank,
    'to_bank', to_bank, 'amount', amount_text }
  if letter == 'C' then
    fields[#fields + 1], fields[#fields + 2] = 'to_balance', balance + amount
  else
    fields[4] = 'rejected'
    fields[#fields + 1], fields[#fields + 2] = 'reason', reason
  end
  local entry, failed = append(events_key, fields)
  if not entry then return failed end
  local writes = {}
  if letter == 'C' then
    local minus = '-' .. amount_text
    writes = {
      'INCRBY', to_key, false, amount_text, minus,
      'INCRBY', balance_key, false, amount_text, minus,
      'HINCRBY', interbank_key, from_bank, amount_text, minus,
    }
  end
  why = write_all(events_key, entry, writes, { 'HSET', inbox_key, field, letter })
  if why then return why end
  return letter
end

local function settle()
  local events_key, outbox_key, in_flight_key = KEYS[1], KEYS[2], KEYS[3]
  local from_key, balance_key, interbank_key = KEYS[4], KEYS[5], KEYS[6]
  local from_bank, to_bank, id, credit_letter = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  if #KEYS ~= 6 or #ARGV ~= 5 then return bad_call('settle takes 6 keys and 5 arguments') end
  local reason
  if credit_letter == 'U' then reason = 'unknown_account'
  elseif credit_letter == 'O' then reason = 'overflow'
  elseif credit_letter ~= 'C' then return bad_call('settle takes the letter C, U or O') end
  local pending = redis.call('HGET', outbox_key, id)
  if not pending then return 'N' end
  -- Read from the right: IBANs and amounts have no comma, a bank name may.
  local entry_to_bank, from, to, amount_text = string.match(pending, '^(.+),([^,]+),([^,]+),([^,]+)$')
  local amount = whole(amount_text)
  if entry_to_bank ~= to_bank or not amount then
    return { 'BADKEY', outbox_key .. ' field ' .. id .. ' holds ' .. pending .. ', not a transfer to ' .. to_bank }
  end
  local minus = '-' .. amount_text
  local fields = { 'id', id, 'status', 'settled', 'from', from, 'to', to, 'from_bank', from_bank,
    'to_bank', to_bank, 'amount', amount_text }
  local writes = { 'INCRBY', in_flight_key, false, minus, amount_text }
  if reason then
    local balance, why = read_balance(from_key)
    if not balance then
      return why or { 'BADKEY', from_key .. ' is missing: the refund of ' .. id .. ' has no account' }
    end
    fields[4] = 'voided'
    fields[#fields + 1], fields[#fields + 2] = 'from_balance', balance + amount
    fields[#fields + 1], fields[#fields + 2] = 'reason', reason
    writes = {
      'INCRBY', from_key, false, amount_text, minus,
      'INCRBY', balance_key, false, amount_text, minus,
      'HINCRBY', interbank_key, to_bank, amount_text, minus,
      'INCRBY', in_flight_key, false, minus, amount_text,
    }
  end
  local entry, failed = append(events_key, fields)
  if not entry then return failed end
  local why = write_all(events_key, entry, writes, { 'HDEL', outbox_key, id })
  if why then return why end
  if reason then return 'V' end
  return 'S'
end

local steps = { debit = debit, credit = credit, settle = settle }
local step = steps[ARGV[1]]
if not step then return bad_call('the first argument names no step') end
return step()
