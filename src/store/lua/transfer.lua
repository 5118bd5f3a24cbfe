#!lua
-- transfer.lua: applies a batch of transfers, in order, as one atomic step on the Redis server.
--
-- Each transfer is checked (funds, accounts, amount) against the balances as the transfers before
-- it in the batch left them, and gets its event in the stream, completed or cancelled. A completed
-- one moves the two accounts and, when the banks differ, the two bank balances and the two
-- interbank balances. Redis runs a script alone, so nothing else can read or write between a
-- funds check and its debit: there is no race to lose.
--
-- Speed (measured with callgrind on redis-server, see docs/BENCHMARKS.md): inside a script every
-- redis.call costs some 6,000 instructions, formatting a Lua number as text for Redis some 2,000,
-- and each table or closure a few hundred. So:
-- - a call of one transfer (the broker's default) takes a straight path: one MGET, one XADD, then
--   its writes with the amount's own text as the change (the one number formatted is the source
--   balance the event records);
-- - a batch reads each account once, keeps running balances in Lua, and writes each changed key
--   once at the end (one INCRBY per account or bank balance, two HINCRBY per interbank pair: the
--   two sides of a pair always move by opposite amounts, so one sum per pair is kept).
-- If any write fails (a key of the wrong type, say), the writes already made and the call's events
-- are undone and no outcome is recorded: the whole call is as if never sent.
--
-- Idempotency: every transfer has a producer (one broker worker) and a sequence number, 1, 2, 3...
-- The producer key holds one outcome letter per applied transfer, so its length is the last
-- sequence applied. A transfer whose sequence is already there is not applied again: its first
-- outcome is read back and returned. A retry after a dropped connection is therefore safe, and
-- costs one STRLEN and one APPEND per call, not one key per transfer.
--
-- The `#!lua` line (no flags) makes Redis refuse the whole script up front when it is out of
-- memory, instead of failing halfway through.
--
-- A call has one of two shapes. One transfer (7 arguments, the broker's default):
-- KEYS  events stream, producer's outcome string, source bank's balance, source bank's interbank
--       hash, destination bank's balance, destination bank's interbank hash, source account,
--       destination account (the bank keys given twice when both accounts are of one bank)
-- ARGV  producer id, sequence, source bank, destination bank, source IBAN, destination IBAN,
--       amount in cents
-- A batch (with its counts and bank numbers, so never 7 arguments):
-- KEYS[1]                     the events stream
-- KEYS[2]                     the producer's outcome string
-- KEYS[3 + 2*(b-1)]           bank b's balance         (b = 1..bank_count)
-- KEYS[4 + 2*(b-1)]           bank b's interbank hash
-- KEYS[A + 2*i - 1], KEYS[A + 2*i]  transfer i's source and destination account, A = 2 + 2*bank_count
-- ARGV[1] producer id, ARGV[2] first sequence, ARGV[3] bank_count, ARGV[3 + b] bank b's name,
-- ARGV[4 + bank_count] transfer count n, then for each transfer five values:
--   source bank index, destination bank index, source IBAN, destination IBAN, amount in cents.
--
-- Returns outcomes, or { outcomes, code, message } when the call stopped early: one letter per
-- transfer of the batch, in order, for the transfers that were applied (all of them unless the
-- call stopped; the transfers before a source or destination that cannot be read are applied, none
-- after it). A plain string, not a table, in the common case: Redis turns a table reply into RESP
-- at a cost of some 5,000 instructions.
--   C completed, F cancelled: insufficient funds, U cancelled: unknown account,
--   S cancelled: same account, A cancelled: bad amount, O cancelled: balance would overflow.
-- Why a call stopped, the code the broker acts on (the message says the key and Redis's words):
--   NOPERM  the ACL user may not run a command of the call on its key
--   BADKEY  an account key holds something that is not an integer balance
--   FAILED  a command failed for another reason (a key of the wrong type, say)
-- Calls refused before anything is read answer an error reply whose first word is its code:
--   SEQGAP   the sequence is past the producer's last applied + 1: Redis lost acknowledged writes
--   BADCALL  the keys and arguments do not make a call of either shape

-- The largest integer a Lua number (an IEEE double) holds exactly, 2^53 - 1: the bound of every
-- balance, amount and sequence number.
local MAX_SAFE_CENTS = 9007199254740991
local MAX_BATCH = 8192
-- Interbank pair (low, high) of local bank numbers is kept at index low * PAIR_STRIDE + high.
local PAIR_STRIDE = 65536
-- Integers arrive as canonical decimal text, so that the text can go on to Redis as it came.
local CANONICAL = '^[1-9]%d*$'
local floor, find = math.floor, string.find

local events_key, producer_key = KEYS[1], KEYS[2]
local producer, first_seq_text = ARGV[1], ARGV[2]
local first_seq = find(first_seq_text, CANONICAL) and tonumber(first_seq_text)
if not first_seq or first_seq > MAX_SAFE_CENTS then
  return redis.error_reply('BADCALL interbank: malformed call: bad sequence')
end

-- Every argument costs Redis some 1,200 instructions, so one transfer comes with no counts or
-- bank numbers: its shape is told by its number of arguments.
local single = ARGV[7] ~= nil and ARGV[8] == nil
local bank_count, n, argv_base, account_key_base, from_bank_of, to_bank_of
if single then
  if KEYS[8] == nil or KEYS[9] ~= nil then
    return redis.error_reply('BADCALL interbank: malformed call: one transfer takes 8 keys')
  end
  n = 1
else
  bank_count = tonumber(ARGV[3])
  if not (bank_count and bank_count >= 0 and bank_count == floor(bank_count)) then
    return redis.error_reply('BADCALL interbank: malformed call: bad bank count')
  end
  argv_base, account_key_base = 4 + bank_count, 2 + 2 * bank_count
  n = tonumber(ARGV[argv_base])
  if not (n and n >= 1 and n <= MAX_BATCH and n == floor(n))
      or #ARGV ~= argv_base + 5 * n or #KEYS ~= account_key_base + 2 * n then
    return redis.error_reply('BADCALL interbank: malformed call: argument or key count does not match the batch')
  end
  -- Shape checks of every transfer before anything is written; the bank numbers are kept. They
  -- are looked up by their text ('1'..bank_count), which costs less than parsing them.
  local bank_of_text = {}
  for b = 1, bank_count do
    bank_of_text[tostring(b)] = b
  end
  from_bank_of, to_bank_of = {}, {}
  for i = 1, n do
    local a = argv_base + 5 * (i - 1)
    local fb, tb = bank_of_text[ARGV[a + 1]], bank_of_text[ARGV[a + 2]]
    if not (fb and tb) then
      return redis.error_reply('BADCALL interbank: malformed call: bank index out of range in transfer ' .. i)
    end
    from_bank_of[i], to_bank_of[i] = fb, tb
  end
end

-- Raises WRONGTYPE, before any write, if the producer key was tampered with.
local applied = redis.call('STRLEN', producer_key)
if first_seq > applied + 1 then
  return redis.error_reply('SEQGAP interbank: sequence gap for producer ' .. producer .. ': expected at most '
    .. (applied + 1) .. ', got ' .. first_seq)
end
local replayed = applied - first_seq + 1
if replayed > n then replayed = n end
local old = ''
if replayed > 0 then
  old = redis.call('GETRANGE', producer_key, first_seq - 1, first_seq + replayed - 2)
end

local id_prefix = producer .. '-'
-- The stream entries this call added, for the undo.
local entries = {}

-- Why the call stopped, as { code, message }: the code is what the broker acts on (see the reply
-- above), the message what a person reads. A failed command is NOPERM when the ACL user may not
-- run it on that key (asked only after a failure, so it costs nothing on the way through: inside a
-- script Redis 7.0 reports a denied command as a plain ERR), else FAILED.
local function failure(command, key, err)
  local code = 'FAILED'
  if not redis.acl_check_cmd(command, key) then code = 'NOPERM' end
  return { code, command .. ' ' .. key .. ': ' .. err }
end

-- A stored balance as a number, false when the account does not exist, or nil and why it is not a
-- balance.
local function parse_balance(key, raw)
  if not raw then return false end
  local value = tonumber(raw)
  if value == nil or value ~= floor(value) then
    return nil, { 'BADKEY', key .. ' holds ' .. raw .. ', not an integer balance' }
  end
  return value
end

-- Why reading two accounts failed.
local function read_failure(from_key, to_key, err)
  local code = 'FAILED'
  if not redis.acl_check_cmd('MGET', from_key, to_key) then code = 'NOPERM' end
  return { code, 'MGET ' .. from_key .. ' ' .. to_key .. ': ' .. err }
end

-- The outcome of a transfer against the balances it sees: its letter, the cancel reason (nil when
-- completed) and the amount as a number (nil when malformed).
local function decide(from, to, amount_text, from_balance, to_balance)
  local amount = find(amount_text, CANONICAL) and tonumber(amount_text)
  if not amount or amount > MAX_SAFE_CENTS then return 'A', 'bad_amount', nil end
  if from == to then return 'S', 'same_account', amount end
  if not from_balance or not to_balance then return 'U', 'unknown_account', amount end
  if from_balance < amount then return 'F', 'insufficient_funds', amount end
  if to_balance + amount > MAX_SAFE_CENTS then return 'O', 'overflow', amount end
  return 'C', nil, amount
end

-- Appends a transfer's event to the stream; returns nil, or why it could not. Numbers reach Redis
-- as exact integers (Redis formats them with %.17g; all are below 2^53).
local function add_event(id, code, reason, from, to, from_bank, to_bank, amount_text, amount, from_balance)
  local entry
  if code == 'C' then
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'completed', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'from_balance', from_balance - amount)
  elseif from_balance then
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'from_balance', from_balance,
      'reason', reason)
  else
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'reason', reason)
  end
  if type(entry) == 'table' then return failure('XADD', events_key, entry.err) end
  entries[#entries + 1] = entry
  return nil
end

-- Decided outcome letters, why the call stopped before its end (nil if it did not), and the writes
-- to make: five values each, the command (INCRBY or HINCRBY), the key, the hash field (false for
-- INCRBY), the change, and the change that undoes it.
local fresh, stop
local writes = {}

if single and replayed == 1 then
  fresh = ''
elseif single then
  -- One transfer: straight through.
  local from_bank, to_bank = ARGV[3], ARGV[4]
  local from_key, to_key = KEYS[7], KEYS[8]
  local from, to, amount_text = ARGV[5], ARGV[6], ARGV[7]
  local from_balance, to_balance
  local values = redis.pcall('MGET', from_key, to_key)
  if values.err then
    stop = read_failure(from_key, to_key, values.err)
  else
    from_balance, stop = parse_balance(from_key, values[1])
    if from_balance ~= nil then to_balance, stop = parse_balance(to_key, values[2]) end
  end
  fresh = ''
  if not stop then
    local code, reason, amount = decide(from, to, amount_text, from_balance, to_balance)
    stop = add_event(id_prefix .. first_seq_text, code, reason, from, to, from_bank, to_bank,
      amount_text, amount, from_balance)
    if not stop then
      fresh = code
      if code == 'C' then
        local minus = '-' .. amount_text
        if from_bank == to_bank then
          writes = { 'INCRBY', from_key, false, minus, amount_text, 'INCRBY', to_key, false, amount_text, minus }
        else
          writes = {
            'INCRBY', from_key, false, minus, amount_text,
            'INCRBY', to_key, false, amount_text, minus,
            'INCRBY', KEYS[3], false, minus, amount_text,
            'INCRBY', KEYS[5], false, amount_text, minus,
            'HINCRBY', KEYS[4], to_bank, minus, amount_text,
            'HINCRBY', KEYS[6], from_bank, amount_text, minus,
          }
        end
      end
    end
  end
else
  -- A batch: running balances of the accounts read so far (false: the account does not exist), and
  -- the changes not yet written, per account (in the order accounts were first changed), per local
  -- bank number, and per interbank pair (what the lower-numbered bank's field for the other bank
  -- moves by).
  local balance = {}
  local account_delta, accounts_changed = {}, {}
  local bank_delta, pair_delta = {}, {}
  local codes = {}
  for i = replayed + 1, n do
    local a = argv_base + 5 * (i - 1)
    local from_key, to_key = KEYS[account_key_base + 2 * i - 1], KEYS[account_key_base + 2 * i]
    -- Read the accounts not read yet; a key that cannot be read or is not an integer stops here.
    local from_balance, to_balance = balance[from_key], balance[to_key]
    if from_balance == nil or to_balance == nil then
      local values
      if from_balance == nil and to_balance == nil and from_key ~= to_key then
        values = redis.pcall('MGET', from_key, to_key)
      elseif from_balance == nil then
        values = redis.pcall('MGET', from_key)
      else
        values = redis.pcall('MGET', to_key)
      end
      if values.err then stop = read_failure(from_key, to_key, values.err) break end
      if from_balance == nil then
        from_balance, stop = parse_balance(from_key, values[1])
        if from_balance == nil then break end
        balance[from_key] = from_balance
        if to_key == from_key then to_balance = from_balance end
      end
      if to_balance == nil then
        to_balance, stop = parse_balance(to_key, values[#values])
        if to_balance == nil then break end
        balance[to_key] = to_balance
      end
    end

    local fb, tb = from_bank_of[i], to_bank_of[i]
    local from, to, amount_text = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    local code, reason, amount = decide(from, to, amount_text, from_balance, to_balance)
    local id
    if i == 1 then id = id_prefix .. first_seq_text else id = id_prefix .. (first_seq + i - 1) end
    stop = add_event(id, code, reason, from, to, ARGV[3 + fb], ARGV[3 + tb], amount_text, amount, from_balance)
    if stop then break end

    if code == 'C' then
      balance[from_key] = from_balance - amount
      balance[to_key] = to_balance + amount
      local d = account_delta[from_key]
      if d == nil then accounts_changed[#accounts_changed + 1] = from_key d = 0 end
      account_delta[from_key] = d - amount
      d = account_delta[to_key]
      if d == nil then accounts_changed[#accounts_changed + 1] = to_key d = 0 end
      account_delta[to_key] = d + amount
      if fb ~= tb then
        bank_delta[fb] = (bank_delta[fb] or 0) - amount
        bank_delta[tb] = (bank_delta[tb] or 0) + amount
        if fb < tb then
          local p = fb * PAIR_STRIDE + tb
          pair_delta[p] = (pair_delta[p] or 0) - amount
        else
          local p = tb * PAIR_STRIDE + fb
          pair_delta[p] = (pair_delta[p] or 0) + amount
        end
      end
    end
    codes[#codes + 1] = code
  end
  fresh = table.concat(codes)

  -- Each changed key once: accounts in the order first changed, bank balances, interbank pairs.
  local function add_write(command, key, field, d)
    if d and d ~= 0 then
      local w = #writes
      writes[w + 1], writes[w + 2], writes[w + 3], writes[w + 4], writes[w + 5] = command, key, field, d, -d
    end
  end
  for j = 1, #accounts_changed do
    local key = accounts_changed[j]
    add_write('INCRBY', key, false, account_delta[key])
  end
  for b = 1, bank_count do
    add_write('INCRBY', KEYS[1 + 2 * b], false, bank_delta[b])
  end
  for low = 1, bank_count - 1 do
    for high = low + 1, bank_count do
      local d = pair_delta[low * PAIR_STRIDE + high]
      if d then
        add_write('HINCRBY', KEYS[2 + 2 * low], ARGV[3 + high], d)
        add_write('HINCRBY', KEYS[2 + 2 * high], ARGV[3 + low], -d)
      end
    end
  end
end

-- The writes, then the outcome letters: if any fails (a key of the wrong type; a user denied
-- APPEND, say), the writes made are undone, and a resent call finds its sequences unapplied.
local failed_at, why
for w = 1, #writes, 5 do
  local reply
  if writes[w + 2] then
    reply = redis.pcall(writes[w], writes[w + 1], writes[w + 2], writes[w + 3])
  else
    reply = redis.pcall(writes[w], writes[w + 1], writes[w + 3])
  end
  if type(reply) == 'table' then
    failed_at, why = w, failure(writes[w], writes[w + 1], reply.err)
    break
  end
end
if not failed_at and #fresh > 0 then
  local reply = redis.pcall('APPEND', producer_key, fresh)
  if type(reply) == 'table' then failed_at, why = #writes + 1, failure('APPEND', producer_key, reply.err) end
end
if failed_at then
  -- Undo every write made, newest first (each restores a value that existed a moment ago, so it
  -- cannot fail), then the events.
  for u = failed_at - 5, 1, -5 do
    local undo
    if writes[u + 2] then
      undo = redis.pcall(writes[u], writes[u + 1], writes[u + 2], writes[u + 4])
    else
      undo = redis.pcall(writes[u], writes[u + 1], writes[u + 4])
    end
    assert(type(undo) ~= 'table', 'undo failed')
  end
  for j = #entries, 1, -1 do
    redis.call('XDEL', events_key, entries[j])
  end
  if #entries > 0 and redis.call('XLEN', events_key) == 0 then
    redis.call('DEL', events_key)
  end
  return { old, why[1], why[2] }
end

if stop then
  return { old .. fresh, stop[1], stop[2] }
end
return old .. fresh
