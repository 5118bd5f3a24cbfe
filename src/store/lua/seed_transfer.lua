#!lua
-- seed_transfer.lua: the Go demo's transfer (its keys, its signs, its event), made atomic and
-- idempotent: a batch of transfers applied in order as one step on the Redis server.
--
-- The demo writes, for a transfer of `a` between two banks, each as its own command: the source
-- account -a (the only step it protects), P:banks:<From> -a, P:banks:<To> +a,
-- P:balances:<From>:<To> +a, P:balances:<To>:<From> -a, the destination account +a, then one
-- stream entry in P:transactions with a single field `json`. Inside one bank only the two
-- accounts move. This script writes exactly those keys with exactly those signs, and the same
-- JSON, so the demo's own consumer reads our data as its own; but all of a transfer happens at
-- once, so a killed broker or a retried call can neither leave half of one nor apply one twice.
--
-- The event: {"err":"","from":{"iban","bank","person","ammount"},"to":{...},"ammount":a,
-- "status":s} ("ammount" is the demo's spelling). from.ammount is the source balance read before
-- the debit; to.ammount the destination's balance as loaded from the accounts file (as the demo
-- does). status 2 completed, 3 cancelled (insufficient funds; a transfer of the whole balance is
-- allowed), 4 error with `err` set (an account that is missing, or the same account twice).
--
-- Idempotency, as in transfer.lua: a producer (one broker worker) numbers its transfers 1, 2,
-- 3...; its outcome string (under our prefix, where the demo's consumer never looks) holds one
-- letter per applied transfer. A transfer already applied is answered with its first outcome.
--
-- KEYS[1] the stream P:transactions, KEYS[2] the producer's outcome string, KEYS[3] the hash of
--   account holders' names by IBAN, KEYS[4] the hash of initial balances by IBAN, then for each
--   transfer i six keys, KEYS[4 + 6*(i-1) + 1..6]: source account, destination account,
--   P:banks:<From>, P:banks:<To>, P:balances:<From>:<To>, P:balances:<To>:<From>.
-- ARGV[1] producer id, ARGV[2] first sequence, ARGV[3] transfer count n, then for each transfer
--   five values: source IBAN, destination IBAN, source bank, destination bank, amount in cents.
--
-- Returns the outcome letters (C completed, F insufficient funds, U unknown account, S same
-- account, A bad amount), or { letters, code, message } when a write failed (the transfer's own
-- writes undone; code FAILED or NOPERM). Refused calls answer an error reply: SEQGAP (the
-- sequence is past the producer's last + 1) or BADCALL (keys and arguments do not match).
--
-- The `#!lua` line (no flags) makes Redis refuse the whole script up front when it is out of
-- memory, instead of failing halfway through.

local MAX_SAFE_CENTS = 9007199254740991
local FIRST_TRANSFER_KEY = 4

local producer = ARGV[1]
local first_seq = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
if not producer or not first_seq or first_seq < 1 or not n or n < 1 then
  return redis.error_reply('BADCALL interbank: malformed call: bad producer, sequence or count')
end
if #KEYS ~= FIRST_TRANSFER_KEY + 6 * n or #ARGV ~= 3 + 5 * n then
  return redis.error_reply('BADCALL interbank: malformed call: argument or key count does not match the batch')
end

local stream, producer_key, people_key, initial_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local applied = redis.call('STRLEN', producer_key)
if first_seq > applied + 1 then
  return redis.error_reply('SEQGAP interbank: sequence gap for producer ' .. producer .. ': expected at most '
    .. (applied + 1) .. ', got ' .. first_seq)
end

-- The letters of the transfers of this call already applied by an earlier call.
local repeated = math.min(applied - first_seq + 1, n)
local letters = {}
if repeated > 0 then
  letters[1] = redis.call('GETRANGE', producer_key, first_seq - 1, first_seq - 2 + repeated)
end

local function integer(n) return string.format('%.0f', n) end

-- One party of the event, as the demo writes it.
local function party(iban, bank, person, balance)
  return '{"iban":' .. cjson.encode(iban) .. ',"bank":' .. cjson.encode(bank) .. ',"person":'
    .. cjson.encode(person or '') .. ',"ammount":' .. integer(balance or 0) .. '}'
end

local function event(err, from, to, amount, status)
  return '{"err":' .. cjson.encode(err) .. ',"from":' .. from .. ',"to":' .. to .. ',"ammount":'
    .. integer(amount) .. ',"status":' .. status .. '}'
end

-- Applies `writes` ({ key, command, delta } in order); on a failure undoes those made and
-- returns the failing command's words.
local function apply(writes)
  for i, w in ipairs(writes) do
    local ok = redis.pcall(w[2], w[1], w[3])
    if type(ok) == 'table' and ok.err then
      for j = i - 1, 1, -1 do
        local undo = writes[j][2] == 'INCRBY' and 'DECRBY' or 'INCRBY'
        redis.pcall(undo, writes[j][1], writes[j][3])
      end
      local code = string.find(ok.err, 'NOPERM', 1, true) and 'NOPERM' or 'FAILED'
      return code, w[2] .. ' ' .. w[1] .. ': ' .. ok.err
    end
  end
  return nil
end

-- Balances as this call left them, so a batch that moves one account twice reads its own writes.
local balances = {}
local function balance(key)
  if balances[key] == nil then
    local raw = redis.call('GET', key)
    balances[key] = raw and tonumber(raw) or false
  end
  return balances[key]
end

local decided = {}
for i = repeated + 1, n do
  local k = FIRST_TRANSFER_KEY + 6 * (i - 1)
  local a = 3 + 5 * (i - 1)
  local from_iban, to_iban, from_bank, to_bank = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local amount = tonumber(ARGV[a + 5])
  local from_key, to_key = KEYS[k + 1], KEYS[k + 2]
  local names = redis.call('HMGET', people_key, from_iban, to_iban)
  local to_initial = tonumber(redis.call('HGET', initial_key, to_iban) or '0')
  local from_balance, to_balance = balance(from_key), balance(to_key)
  local letter, status, err = 'C', 2, ''
  if not amount or amount < 1 or amount > MAX_SAFE_CENTS or amount % 1 ~= 0 then
    letter, status, err = 'A', 4, 'bad amount'
  elseif from_key == to_key then
    letter, status, err = 'S', 4, 'same account'
  elseif not from_balance or not to_balance then
    letter, status, err = 'U', 4, 'unknown account'
  elseif from_balance < amount then
    letter, status = 'F', 3
  end
  if letter == 'C' then
    local writes = { { from_key, 'DECRBY', amount } }
    if from_bank ~= to_bank then
      table.insert(writes, { KEYS[k + 3], 'DECRBY', amount })
      table.insert(writes, { KEYS[k + 4], 'INCRBY', amount })
      table.insert(writes, { KEYS[k + 5], 'INCRBY', amount })
      table.insert(writes, { KEYS[k + 6], 'DECRBY', amount })
    end
    table.insert(writes, { to_key, 'INCRBY', amount })
    local code, message = apply(writes)
    if code then
      if #decided > 0 then redis.call('APPEND', producer_key, table.concat(decided)) end
      table.insert(letters, table.concat(decided))
      return { table.concat(letters), code, message }
    end
    balances[from_key] = from_balance - amount
    balances[to_key] = to_balance + amount
  end
  local from = party(from_iban, from_bank, names[1], from_balance or 0)
  local to = party(to_iban, to_bank, names[2], to_initial)
  redis.call('XADD', stream, '*', 'json', event(err, from, to, amount or 0, status))
  table.insert(decided, letter)
end
if #decided > 0 then redis.call('APPEND', producer_key, table.concat(decided)) end
table.insert(letters, table.concat(decided))
return table.concat(letters)
