#!lua
-- cross_bank.lua: the three steps of a transfer between two banks whose keys live on different
-- shards of a Redis Cluster. A cluster runs a script only on keys of one slot, and every key of a
-- bank carries the bank's hash tag ({B}), so a transfer from bank A to bank B cannot be one
-- script: it is three, each atomic on its own shard, each safe to repeat.
--
--   debit   on A's shard: checks the funds and debits the source account, moves A's balance and
--           its interbank position with B, records the transfer in A's outbox and its amount in
--           A's in-flight total, and appends a `debited` event (or a `cancelled` one, with
--           nothing moved, when the source cannot pay); the debits of one call share one
--           `debited` event, split by any cancelled one so that the stream keeps sequence order.
--           Deduplicated by the producer's sequence, like transfer.lua.
--   credit  on B's shard: credits the destination account, B's balance and its interbank
--           position with A; the credits of one call share one `credited` event. Or, when the
--           destination is unknown or would overflow, moves nothing and appends a `rejected`
--           event. Deduplicated by the source bank and the transfer id in B's inbox, which keeps
--           each transfer's answer.
--   settle  on A's shard: takes the transfer out of the outbox and the in-flight total when it
--           was credited, or refunds the source (balance, bank balance, interbank position) with
--           a `voided` event when it was rejected. The credited ones of one call share one
--           `settled` event that names them all (no money moves; an entry per transfer cost Redis
--           as much as the debit). A transfer no longer in the outbox was settled already:
--           nothing happens.
--   forget  on B's shard: removes the answers of settled transfers from B's inbox, so that it
--           holds only what is still in flight, and raises the inbox's epoch. A credit carries
--           the epoch its sender read before it made sure the debits were still in their
--           outboxes; a credit with an older epoch is refused whole (STALE), since its sender may
--           have seen in flight a transfer that was settled and forgotten since, and crediting
--           it again would create money. The sender reads the new epoch from the refusal, makes
--           sure of its debits again, and credits with it.
--
-- Money in flight is always visible: in A's outbox and in-flight total from the debit to the
-- settlement. Every step can be sent again after a lost reply or by the recovery pass, in any
-- number, and changes nothing the second time.
--
-- Each step takes a batch of n transfers (n = 1 and up) that share the bank whose shard runs it:
-- the debits of one source bank, the credits of one destination bank, the settlements of one
-- source bank. A batch reads its accounts with one MGET before anything is written, keeps running
-- balances, and writes each changed key once at the end (the accounts' new balances in one MSET,
-- one sum per other key): a batch costs Redis far less per transfer than one call each. Speed
-- (callgrind on redis-server, see docs/BENCHMARKS.md): the Lua work per transfer costs more than
-- the commands it calls, so a batch builds no table per transfer, a lone debit takes a straight
-- path before anything else is defined, and each number formatted or pattern matched counts.
-- ARGV[1] names the step; the keys and the other arguments:
--   debit   KEYS  A's events, the producer's outcome string in A, A's balance, A's interbank
--                 hash, A's outbox, A's in-flight total, then the n source accounts
--           ARGV  'debit', producer id, first sequence, A, n, then per transfer: B, source IBAN,
--                 destination IBAN, amount
--           reply one letter per transfer: D debited (in flight), or F insufficient funds,
--                 U unknown source, A bad amount (cancelled, nothing moved)
--   credit  KEYS  B's events, B's inbox, B's balance, B's interbank hash, then the n
--                 destination accounts
--           ARGV  'credit', B, the sender's epoch of B's inbox, n, then per transfer: A,
--                 transfer id, source IBAN, destination IBAN, amount
--           reply per transfer: C credited, or U rejected: unknown destination, O rejected: it
--                 would overflow; or { 'STALE', the inbox's epoch } and nothing written
--   settle  KEYS  A's events, A's outbox, A's in-flight total, A's balance, A's interbank hash,
--                 then the source account of each rejected transfer, in order
--           ARGV  'settle', A, n, the n credits' letters as one string (C, U or O each), then
--                 the n transfer ids (the outbox has the rest)
--           reply per transfer: S settled, V voided (refunded), or N when settled already
--   forget  KEYS  B's inbox
--           ARGV  'forget', n, then the n inbox fields ('A|transfer id') of settled transfers
--           reply the inbox's new epoch
-- A step that could not finish (a key of the wrong type, a denied command) undoes all its writes
-- and events and answers { code, message }: NOPERM, BADKEY or FAILED, as transfer.lua. A
-- malformed call is an error reply BADCALL; a first sequence past the producer's next one, SEQGAP.
--
-- An outbox entry is field = transfer id, value = 'B,source IBAN,destination IBAN,amount'; an
-- inbox entry is field = 'A|transfer id', value = the credit's letter; the inbox's field 'epoch'
-- (no '|', so never a transfer's) counts its forget calls, missing until the first. A settlement's event has
-- the fields status ('settled'), from_bank, amount (the sum) and ids (separated by spaces). The
-- debits' or credits' event of a call (an entry per transfer cost Redis some 17,000 instructions,
-- most of a batched step's own work): status ('debited' or 'credited'), the stream's bank
-- (from_bank or to_bank) and transfers, one line per transfer (separated by '\n') of 'id from to
-- amount balance bank': the balance after the step, the other bank (an IBAN has no space, and a
-- bank's name, last, no control character). A lone debit's event has the fields of transfer.lua's.

local MAX_SAFE_CENTS = 9007199254740991
local MAX_BATCH = 8192
-- Keys per MGET, fields per HMGET, HSET or HDEL: Lua unpacks at most some 8,000 values at once.
local FIELDS_PER_COMMAND = 1000
-- Transfers per entry of a call's debits or credits (see append_lines).
local LINES_PER_ENTRY = 128
local CANONICAL = '^[1-9]%d*$'
-- A stored balance as Redis's INCRBY reads one: an optional minus, no leading zero, digits only.
-- (tonumber also takes ' 1000 ', '0x3e8', '1e3' and 'inf'; a batch writes its balances back
-- with MSET, so it must refuse what INCRBY would.)
local BALANCE = '^-?[1-9]%d*$'
local floor, find, match, sub, concat = math.floor, string.find, string.match, string.sub, table.concat
-- A whole number as text: Redis formats a Lua number it is given with %.17g, which costs some
-- 3,600 instructions; %d some 2,200 (every balance and sum is an integer below 2^53).
local format = string.format

-- The broker's most frequent call, one debit (`--batch 1`), takes a straight path before anything
-- else is defined: making the functions and tables below costs Redis some 32,000 instructions per
-- call (callgrind), a fifth of a lone debit. It takes the common cases only: a fresh sequence, an
-- amount and a balance that parse, every command accepted; it moves money or refuses for want of
-- funds. On anything else it returns nil with nothing written (a write that failed is undone
-- first), and the general path below makes the call again with every check and error reply.
local function lone_debit()
  local events_key, producer_key, from_key = KEYS[1], KEYS[2], KEYS[7]
  local first_text, from_bank, to_bank = ARGV[3], ARGV[4], ARGV[6]
  local from, to, amount_text = ARGV[7], ARGV[8], ARGV[9]
  local first = find(first_text, CANONICAL) and tonumber(first_text)
  local amount = find(amount_text, CANONICAL) and tonumber(amount_text)
  if not first or not amount or amount > MAX_SAFE_CENTS or to_bank == from_bank then return nil end
  local applied = redis.pcall('STRLEN', producer_key)
  if applied ~= first - 1 then return nil end
  local values = redis.pcall('MGET', from_key)
  local raw = values[1]
  if values.err or not raw or not (raw == '0' or find(raw, BALANCE)) then return nil end
  local balance = tonumber(raw)
  if balance > MAX_SAFE_CENTS or balance < -MAX_SAFE_CENTS then return nil end
  local id = ARGV[2] .. '-' .. first_text
  local letter, entry = 'D', nil
  if balance < amount then
    letter = 'F'
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'from_balance', format('%d', balance),
      'reason', 'insufficient_funds')
  else
    entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'debited', 'from', from, 'to', to,
      'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'from_balance', format('%d', balance - amount))
  end
  if type(entry) == 'table' then return nil end
  local minus, pcall = '-' .. amount_text, redis.pcall
  -- The writes in a row, straight-line (a table of tables of them cost some 20,000 instructions,
  -- 15% of a lone debit): which one failed, if any, then the ones before it undone in reverse.
  local failed = 0
  if letter == 'D' then
    if type(pcall('INCRBY', from_key, minus)) == 'table' then failed = 1
    elseif type(pcall('INCRBY', KEYS[3], minus)) == 'table' then failed = 2
    elseif type(pcall('INCRBY', KEYS[6], amount_text)) == 'table' then failed = 3
    elseif type(pcall('HINCRBY', KEYS[4], to_bank, minus)) == 'table' then failed = 4
    elseif type(pcall('HSET', KEYS[5], id, to_bank .. ',' .. from .. ',' .. to .. ',' .. amount_text)) == 'table' then
      failed = 5
    end
  end
  if failed == 0 and type(pcall('APPEND', producer_key, letter)) == 'table' then failed = 6 end
  if failed == 0 then return letter end
  if letter == 'D' then
    if failed > 5 then redis.call('HDEL', KEYS[5], id) end
    if failed > 4 then redis.call('HINCRBY', KEYS[4], to_bank, amount_text) end
    if failed > 3 then redis.call('INCRBY', KEYS[6], minus) end
    if failed > 2 then redis.call('INCRBY', KEYS[3], amount_text) end
    if failed > 1 then redis.call('INCRBY', from_key, amount_text) end
  end
  redis.call('XDEL', events_key, entry)
  if redis.call('XLEN', events_key) == 0 then redis.call('DEL', events_key) end
  return nil
end

if ARGV[1] == 'debit' and ARGV[5] == '1' and #KEYS == 7 and #ARGV == 9 then
  local letter = lone_debit()
  if letter then return letter end
end

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
-- key, else FAILED. A command that takes a value after its key (MSET) is checked with it.
local function failure(command, key, err, value)
  local code = 'FAILED'
  local allowed
  if value then allowed = redis.acl_check_cmd(command, key, value) else allowed = redis.acl_check_cmd(command, key) end
  if not allowed then code = 'NOPERM' end
  return { code, command .. ' ' .. key .. ': ' .. err }
end

-- The balances of the account keys list[first..last], read before anything is written, one MGET
-- per FIELDS_PER_COMMAND keys: key -> balance, or false when the account does not exist (MGET
-- reads a key holding no string as missing, as in transfer.lua). nil and why when a key holds no
-- integer as INCRBY writes one (BALANCE), or one past 2^53.
local function read_accounts(list, first, last)
  local balances = {}
  for start = first, last, FIELDS_PER_COMMAND do
    local stop = math.min(last, start + FIELDS_PER_COMMAND - 1)
    local values = redis.pcall('MGET', unpack(list, start, stop))
    if values.err then return nil, failure('MGET', list[start], values.err) end
    for i = start, stop do
      local raw, value = values[i - start + 1], false
      if raw then
        value = (raw == '0' or find(raw, BALANCE)) and tonumber(raw)
        if not value or value > MAX_SAFE_CENTS or value < -MAX_SAFE_CENTS then
          return nil, { 'BADKEY', list[i] .. ' holds ' .. raw .. ', not an integer balance' }
        end
      end
      balances[list[i]] = value
    end
  end
  return balances
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

-- Keeps the entry id of an event just appended; on a failed XADD, removes the call's events and
-- returns why.
local function appended(events_key, entries, entry)
  if type(entry) == 'table' then
    undo_events(events_key, entries)
    return failure('XADD', events_key, entry.err)
  end
  entries[#entries + 1] = entry
  return nil
end

-- One transfer's line in a call's debits or credits entry: the balance after the step and the
-- transfer's other bank, last (it may hold spaces).
local function step_line(id, from, to, amount_text, balance, other_bank)
  return id .. ' ' .. from .. ' ' .. to .. ' ' .. amount_text .. ' ' .. format('%d', balance) .. ' ' .. other_bank
end

-- Appends the steps gathered in `lines` (one per transfer), in order, as entries of at most
-- LINES_PER_ENTRY lines: status, the stream's bank as `bank_field`, and `transfers`, the lines.
-- An XADD per transfer cost Redis some 17,000 instructions, most of a batched step's own work;
-- the bound keeps an entry near 16 KB, so that readers asking for thousands of entries at a time
-- get replies of a bounded size. Returns why it failed, or nil.
local function append_lines(events_key, entries, status, bank_field, bank, lines)
  for first = 1, #lines, LINES_PER_ENTRY do
    local last = math.min(#lines, first + LINES_PER_ENTRY - 1)
    local entry = redis.pcall('XADD', events_key, '*', 'status', status, bank_field, bank,
      'transfers', concat(lines, '\n', first, last))
    local failed = appended(events_key, entries, entry)
    if failed then return failed end
  end
  return nil
end

-- The sums a call writes at the end, one per key or hash field: per account (in the order first
-- changed) and per other bank (the field of this bank's interbank hash).
local function new_sums()
  return { account = {}, accounts = {}, pair = {}, banks = {} }
end

local function add(delta_of, order, name, delta)
  local d = delta_of[name]
  if d == nil then order[#order + 1] = name d = 0 end
  delta_of[name] = d + delta
end

-- The writes of the sums: the accounts' new balances (MSET, FIELDS_PER_COMMAND accounts at a time:
-- one command costs Redis far less than an INCRBY per account, and the script read every balance
-- before writing any), the bank's balance and interbank hash, and (when given) its in-flight
-- total. Each write is { command, key, hash field or false, change }, or for the accounts
-- { 'MSET', key and balance pairs, the pairs that undo them }.
local function sum_writes(sums, balance, bank_keys, bank_cents, in_flight)
  local writes = {}
  local accounts = sums.accounts
  for start = 1, #accounts, FIELDS_PER_COMMAND do
    local set, unset = {}, {}
    for i = start, math.min(#accounts, start + FIELDS_PER_COMMAND - 1) do
      local key = accounts[i]
      local new_balance = balance[key]
      set[#set + 1], set[#set + 2] = key, format('%d', new_balance)
      unset[#unset + 1], unset[#unset + 2] = key, new_balance - sums.account[key]
    end
    writes[#writes + 1] = { 'MSET', set, unset }
  end
  if #sums.banks > 0 then
    writes[#writes + 1] = { 'INCRBY', bank_keys[1], false, bank_cents }
    for _, bank in ipairs(sums.banks) do
      writes[#writes + 1] = { 'HINCRBY', bank_keys[2], bank, sums.pair[bank] }
    end
  end
  if in_flight and in_flight[2] ~= 0 then
    writes[#writes + 1] = { 'INCRBY', in_flight[1], false, in_flight[2] }
  end
  return writes
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

-- Makes the writes, then the final hash write, then (when given) the last write, the producer's
-- APPEND. If any fails, the ones made are undone and the call's events removed: the step is as if
-- never sent, and a resent step finds its sequence unapplied. (The final write before a last one
-- is the debit's HSET of fresh transfer ids into the outbox, undone by HDEL.) Returns nil, or
-- { code, message }.
local function write_all(events_key, entries, writes, final, last)
  local made = 0
  local why
  for i, w in ipairs(writes) do
    local reply
    if w[1] == 'MSET' then
      reply = redis.pcall('MSET', unpack(w[2]))
    elseif w[3] then
      reply = redis.pcall(w[1], w[2], w[3], format('%d', w[4]))
    else
      reply = redis.pcall(w[1], w[2], format('%d', w[4]))
    end
    if type(reply) == 'table' and reply.err then
      if w[1] == 'MSET' then why = failure('MSET', w[2][1], reply.err, w[2][2])
      else why = failure(w[1], w[2], reply.err) end
      break
    end
    made = i
  end
  if not why and final then
    local _, failed = over_fields(final[1], final[2], final[3], final[4])
    why = failed
  end
  if not why and last then
    local reply = redis.pcall(last[1], last[2], last[3])
    if type(reply) == 'table' then
      why = failure(last[1], last[2], reply.err)
      if final then
        local fields = {}
        for i = 1, #final[3], 2 do fields[#fields + 1] = final[3][i] end
        over_fields('HDEL', final[2], fields, 1)
      end
    end
  end
  if not why then return nil end
  for i = made, 1, -1 do
    local w = writes[i]
    if w[1] == 'MSET' then redis.call('MSET', unpack(w[3]))
    elseif w[3] then redis.call(w[1], w[2], w[3], -w[4])
    else redis.call(w[1], w[2], -w[4]) end
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

-- A debit the source cannot make (a bad amount, an unknown source, too little money): its
-- letter and its `cancelled` event's XADD reply. Nothing moves.
local function refuse(events_key, id, from, to, from_bank, to_bank, amount_text, from_balance)
  local letter, reason = 'F', 'insufficient_funds'
  if not whole(amount_text) then letter, reason = 'A', 'bad_amount'
  elseif not from_balance then letter, reason = 'U', 'unknown_account' end
  if from_balance then
    return letter, redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from,
      'to', to, 'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text,
      'from_balance', format('%d', from_balance), 'reason', reason)
  end
  return letter, redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'cancelled', 'from', from,
    'to', to, 'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'reason', reason)
end

local function debit()
  local n = batch_size(5, 6, 4)
  local first = whole(ARGV[3])
  if not n or not first then return bad_call('debit takes 6 + n keys and 5 + 4n arguments') end
  local events_key, producer_key = KEYS[1], KEYS[2]
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

  local balance, unreadable = read_accounts(KEYS, 7 + replayed, 6 + n)
  if not balance then return unreadable end
  local entries, letters, outbox, debits = {}, {}, {}, {}
  local sums = new_sums()
  local debited_cents = 0
  local id_prefix = producer .. '-'
  for i = replayed + 1, n do
    local a = 5 + 4 * (i - 1)
    local to_bank, from, to, amount_text = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    if to_bank == from_bank then
      undo_events(events_key, entries)
      return bad_call('debit is for two banks')
    end
    local from_key = KEYS[6 + i]
    local from_balance = balance[from_key]
    local id
    if i == 1 then id = id_prefix .. first_text else id = id_prefix .. (first + i - 1) end
    local amount = whole(amount_text)
    local letter
    if amount and from_balance and from_balance >= amount then
      letter, from_balance = 'D', from_balance - amount
      balance[from_key] = from_balance
      debits[#debits + 1] = step_line(id, from, to, amount_text, from_balance, to_bank)
      add(sums.account, sums.accounts, from_key, -amount)
      add(sums.pair, sums.banks, to_bank, -amount)
      debited_cents = debited_cents + amount
      outbox[#outbox + 1], outbox[#outbox + 2] = id, to_bank .. ',' .. from .. ',' .. to .. ',' .. amount_text
    else
      -- The debits before it first: a stream holds a producer's transfers in sequence order.
      local failed = append_lines(events_key, entries, 'debited', 'from_bank', from_bank, debits)
      if failed then return failed end
      debits = {}
      local entry
      letter, entry = refuse(events_key, id, from, to, from_bank, to_bank, amount_text, from_balance)
      failed = appended(events_key, entries, entry)
      if failed then return failed end
    end
    letters[#letters + 1] = letter
  end
  local failed = append_lines(events_key, entries, 'debited', 'from_bank', from_bank, debits)
  if failed then return failed end
  local writes = sum_writes(sums, balance, { KEYS[3], KEYS[4] }, -debited_cents, { KEYS[6], debited_cents })
  local final = nil
  if #outbox > 0 then final = { 'HSET', KEYS[5], outbox, 2 } end
  local fresh = concat(letters)
  local why = write_all(events_key, entries, writes, final, { 'APPEND', producer_key, fresh })
  if why then return why end
  return old .. fresh
end

-- The epoch of an inbox: how many forget calls it has had (0 before the first); nil and why when
-- its field holds no count.
local function inbox_epoch(inbox_key)
  local raw = redis.pcall('HGET', inbox_key, 'epoch')
  if type(raw) == 'table' then return nil, failure('HGET', inbox_key, raw.err) end
  if not raw then return 0 end
  local epoch = whole(raw)
  if not epoch then return nil, { 'BADKEY', inbox_key .. ' field epoch holds ' .. raw .. ', not a count' } end
  return epoch
end

local function credit()
  local n = batch_size(4, 4, 5)
  local epoch = ARGV[3] == '0' and 0 or whole(ARGV[3])
  if not n or not epoch then return bad_call('credit takes 4 + n keys and 4 + 5n arguments') end
  local events_key, inbox_key = KEYS[1], KEYS[2]
  local to_bank = ARGV[2]
  local current, unreadable_epoch = inbox_epoch(inbox_key)
  if not current then return unreadable_epoch end
  if epoch < current then return { 'STALE', current } end
  local names = {}
  for i = 1, n do
    local a = 4 + 5 * (i - 1)
    names[i] = ARGV[a + 1] .. '|' .. ARGV[a + 2]
  end
  local answered, failed = over_fields('HMGET', inbox_key, names, 1)
  if not answered then return failed end
  local unanswered = {}
  for i = 1, n do
    if not answered[i] then unanswered[#unanswered + 1] = KEYS[4 + i] end
  end
  local balance, unreadable = read_accounts(unanswered, 1, #unanswered)
  if not balance then return unreadable end
  local entries, letters, inbox, decided, credits = {}, {}, {}, {}, {}
  local sums = new_sums()
  local credited_cents = 0
  for i = 1, n do
    local a = 4 + 5 * (i - 1)
    local from_bank, id, from, to = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local amount_text = ARGV[a + 5]
    local amount = whole(amount_text)
    if not amount or from_bank == to_bank then
      undo_events(events_key, entries)
      return bad_call('credit ' .. i .. ' has a bad amount or comes from its own bank')
    end
    local name = names[i]
    local letter = answered[i] or decided[name]
    if not letter then
      local to_key = KEYS[4 + i]
      local to_balance = balance[to_key]
      if to_balance and to_balance + amount <= MAX_SAFE_CENTS then
        letter, to_balance = 'C', to_balance + amount
        balance[to_key] = to_balance
        credits[#credits + 1] = step_line(id, from, to, amount_text, to_balance, from_bank)
        add(sums.account, sums.accounts, to_key, amount)
        add(sums.pair, sums.banks, from_bank, amount)
        credited_cents = credited_cents + amount
      else
        local reason = 'overflow'
        if not to_balance then letter, reason = 'U', 'unknown_account' else letter = 'O' end
        local entry = redis.pcall('XADD', events_key, '*', 'id', id, 'status', 'rejected', 'from', from, 'to', to,
          'from_bank', from_bank, 'to_bank', to_bank, 'amount', amount_text, 'reason', reason)
        local why = appended(events_key, entries, entry)
        if why then return why end
      end
      decided[name] = letter
      inbox[#inbox + 1], inbox[#inbox + 2] = name, letter
    end
    letters[#letters + 1] = letter
  end
  local failed = append_lines(events_key, entries, 'credited', 'to_bank', to_bank, credits)
  if failed then return failed end
  local writes = sum_writes(sums, balance, { KEYS[3], KEYS[4] }, credited_cents, nil)
  local final = nil
  if #inbox > 0 then final = { 'HSET', inbox_key, inbox, 2 } end
  local why = write_all(events_key, entries, writes, final)
  if why then return why end
  return concat(letters)
end

-- A rejected transfer's refund: its outbox value read, checked against the account key the call
-- names, and the source account credited back with a `voided` event. Returns the amount, or nil
-- and why.
local function refund(ctx, id, value, from_key, reason)
  -- Read from the right: IBANs and amounts have no comma, a bank name may.
  local to_bank, from, to, amount_text = match(value, '^(.+),([^,]+),([^,]+),([^,]+)$')
  local amount = whole(amount_text)
  if not amount or sub(from_key, -(#from + 9)) ~= ':account:' .. from then
    return nil, { 'BADKEY', ctx.outbox_key .. ' field ' .. id .. ' holds ' .. value
      .. ', not a transfer out of ' .. from_key }
  end
  local from_balance = ctx.balance[from_key]
  if not from_balance then
    return nil, { 'BADKEY', from_key .. ' is missing: the refund of ' .. id .. ' has no account' }
  end
  from_balance = from_balance + amount
  ctx.balance[from_key] = from_balance
  local entry = redis.pcall('XADD', ctx.events_key, '*', 'id', id, 'status', 'voided', 'from', from, 'to', to,
    'from_bank', ctx.from_bank, 'to_bank', to_bank, 'amount', amount_text, 'from_balance', format('%d', from_balance),
    'reason', reason)
  local failed = appended(ctx.events_key, ctx.entries, entry)
  if failed then return nil, failed end
  add(ctx.sums.account, ctx.sums.accounts, from_key, amount)
  add(ctx.sums.pair, ctx.sums.banks, to_bank, amount)
  return amount
end

local REJECTIONS = { U = 'unknown_account', O = 'overflow' }

local function settle()
  local n = whole(ARGV[3])
  local answers = ARGV[4]
  if not n or n > MAX_BATCH or #ARGV ~= 4 + n or #answers ~= n or find(answers, '[^CUO]') then
    return bad_call('settle takes 4 arguments, then n ids, and the n answers C, U or O')
  end
  local _, rejected = string.gsub(answers, '[UO]', '')
  if #KEYS ~= 5 + rejected then return bad_call('settle takes 5 keys, then one per rejected answer') end
  local ctx = { events_key = KEYS[1], outbox_key = KEYS[2], from_bank = ARGV[2], entries = {},
    sums = new_sums() }
  local ids = {}
  for i = 1, n do ids[i] = ARGV[4 + i] end
  local pending, failed = over_fields('HMGET', ctx.outbox_key, ids, 1)
  if not pending then return failed end
  local unreadable
  ctx.balance, unreadable = read_accounts(KEYS, 6, #KEYS)
  if not ctx.balance then return unreadable end
  local letters, settled, done = {}, {}, {}
  local settled_cents, refunded_cents = 0, 0
  local refund_key = 5
  for i = 1, n do
    local answer, id, value = sub(answers, i, i), ids[i], pending[i]
    local reason = REJECTIONS[answer]
    if reason then refund_key = refund_key + 1 end
    if not value or done[id] then
      letters[i] = 'N'
    elseif reason then
      local amount, why = refund(ctx, id, value, KEYS[refund_key], reason)
      if not amount then undo_events(ctx.events_key, ctx.entries) return why end
      refunded_cents = refunded_cents + amount
      letters[i] = 'V'
    else
      local amount = whole(match(value, '^.*,(%d+)$'))
      if not amount then
        undo_events(ctx.events_key, ctx.entries)
        return { 'BADKEY', ctx.outbox_key .. ' field ' .. id .. ' holds ' .. value .. ', not a transfer' }
      end
      settled_cents = settled_cents + amount
      settled[#settled + 1] = id
      letters[i] = 'S'
    end
    if value then done[id] = true end
  end
  if #settled > 0 then
    local entry = redis.pcall('XADD', ctx.events_key, '*', 'status', 'settled', 'from_bank', ctx.from_bank,
      'amount', format('%d', settled_cents), 'ids', concat(settled, ' '))
    failed = appended(ctx.events_key, ctx.entries, entry)
    if failed then return failed end
  end
  local closed = {}
  for id in pairs(done) do closed[#closed + 1] = id end
  local writes = sum_writes(ctx.sums, ctx.balance, { KEYS[4], KEYS[5] }, refunded_cents,
    { KEYS[3], -(settled_cents + refunded_cents) })
  local final = nil
  if #closed > 0 then final = { 'HDEL', ctx.outbox_key, closed, 1 } end
  local why = write_all(ctx.events_key, ctx.entries, writes, final)
  if why then return why end
  return concat(letters)
end

local function forget()
  local n = whole(ARGV[2])
  if not n or n > MAX_BATCH or #KEYS ~= 1 or #ARGV ~= 2 + n then
    return bad_call('forget takes 1 key, 2 arguments, then n inbox fields')
  end
  local inbox_key = KEYS[1]
  local fields = {}
  for i = 1, n do
    local field = ARGV[2 + i]
    if not find(field, '|', 1, true) then return bad_call('forget was given ' .. field .. ', not A|id') end
    fields[i] = field
  end
  local current, unreadable = inbox_epoch(inbox_key)
  if not current then return unreadable end
  -- The epoch first: if it cannot be written, nothing is forgotten.
  local raised = redis.pcall('HSET', inbox_key, 'epoch', current + 1)
  if type(raised) == 'table' then return failure('HSET', inbox_key, raised.err) end
  local _, failed = over_fields('HDEL', inbox_key, fields, 1)
  if failed then return failed end
  return current + 1
end

local steps = { debit = debit, credit = credit, settle = settle, forget = forget }
local step = steps[ARGV[1]]
if not step then return bad_call('the first argument names no step') end
return step()
