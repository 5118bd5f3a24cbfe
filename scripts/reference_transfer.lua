-- reference_transfer.lua: the smallest transfer script worth measuring, for scripts/redis_limits.sh.
--
-- Not used by interbank. It does what `shared/measurements.md`'s 8-command script does (one GET,
-- six increments, one XADD of the same eight fields as interbank's events) and nothing more: no
-- idempotency, no checks beyond the funds, no undo. What it costs Redis is a floor for any design
-- that makes one script call per transfer.
-- KEYS: events, (unused), source bank balance, source interbank hash, destination bank balance,
--       destination interbank hash, source account, destination account
-- ARGV: producer, sequence, source bank, destination bank, source IBAN, destination IBAN, amount
-- A missing source account counts as funded, so that redis-benchmark's random keys all transfer.
local balance = tonumber(redis.call('GET', KEYS[7]) or '1000000000000')
local amount = tonumber(ARGV[7])
if balance >= amount then
  redis.call('INCRBY', KEYS[7], -amount)
  redis.call('INCRBY', KEYS[8], amount)
  redis.call('INCRBY', KEYS[3], -amount)
  redis.call('INCRBY', KEYS[5], amount)
  redis.call('HINCRBY', KEYS[4], ARGV[4], -amount)
  redis.call('HINCRBY', KEYS[6], ARGV[3], amount)
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[1] .. '-' .. ARGV[2], 'status', 'completed',
    'from', ARGV[5], 'to', ARGV[6], 'from_bank', ARGV[3], 'to_bank', ARGV[4], 'amount', ARGV[7],
    'from_balance', balance - amount)
end
return 1
