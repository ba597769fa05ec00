-- scripts/loss_demo.lua -- how CE, NLLR, CRL and focal loss respond to the
-- confidence p_y of the true class, computed by the C kernels: the loss
-- values, the gradient on the true logit, and CRL's per-example gradient
-- scale (alpha + 1) / (alpha + 1 - p_y) relative to CE.
--   crlab scripts/loss_demo.lua [outdir] [K]
-- Writes outdir/losses.png and outdir/gradients.png (default runs/loss_demo).
local outdir = arg and arg[1] or 'runs/loss_demo'
local K = tonumber(arg and arg[2]) or 10

-- Logits (N, K) whose softmax gives p_y = ps[i] on class 0 and equal
-- shares to the others: z_0 = log(p_y (K-1) / (1 - p_y)), z_j = 0.
local function logits_for(ps)
  local z = crlab.zeros(#ps, K)
  for i, p in ipairs(ps) do z[i][1] = math.log(p * (K - 1) / (1 - p)) end
  return z
end

local losses = {
  {'CE', crlab.loss.ce{reduction = 'none'}},
  {'NLLR', crlab.loss.nllr{reduction = 'none'}},
  {'CRL(1.5,1)', crlab.loss.crl{alpha = 1.5, beta = 1, reduction = 'none'}},
  {'CRL(3,1)', crlab.loss.crl{alpha = 3, beta = 1, reduction = 'none'}},
  {'focal(2)', crlab.loss.focal{gamma = 2, reduction = 'none'}},
}

local ps = {0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 1 - 1e-6}
local z = logits_for(ps)
local labels = crlab.zeros({#ps}, 'int32')
local ones = crlab.ones(#ps)

print(string.format('Loss and gradient on the true logit, K = %d (columns: loss | dL/dz_y)', K))
local header = string.format('%10s', 'p_y')
for _, l in ipairs(losses) do header = header .. string.format(' | %-19s', l[1]) end
print(header)
local values, grads = {}, {}
for j, l in ipairs(losses) do
  values[j] = l[2]:forward(z, labels):clone()
  grads[j] = l[2]:backward(z, labels, ones):select(2, 1):clone()
end
for i, p in ipairs(ps) do
  local row = string.format('%10.6f', p)
  for j = 1, #losses do
    row = row .. string.format(' | %8.4f %10.3e', values[j][i], grads[j][i])
  end
  print(row)
end

print('\nCRL gradient / CE gradient, per example (theory: (alpha+1)/(alpha+1-p_y)):')
for i, p in ipairs(ps) do
  local measured = grads[3][i] / grads[1][i]
  print(string.format('  p_y = %-10.6g  measured %.6f   theory %.6f', p, measured, 2.5 / (2.5 - p)))
end

print('\nCRL(alpha, beta=1) at p_y -> 1 approaches its minimum log(alpha):')
local confident = logits_for({1 - 1e-7})
for _, alpha in ipairs({1, 1.5, 2, 4}) do
  local v = crlab.loss.crl{alpha = alpha}:forward(confident, {0})
  print(string.format('  alpha = %-4g  CRL = %.6f   log(alpha) = %.6f', alpha, v, math.log(alpha)))
end

-- curves
local xs = {}
for i = 1, 199 do xs[i] = i / 200 end
local zc = logits_for(xs)
local lab = crlab.zeros({#xs}, 'int32')
local ones_c = crlab.ones(#xs)
local series_v, series_g = {}, {}
for j, l in ipairs(losses) do
  local v = l[2]:forward(zc, lab):totable()
  local g = l[2]:backward(zc, lab, ones_c):select(2, 1):totable()
  for i = 1, #g do g[i] = -g[i] end
  series_v[j] = {name = l[1], x = xs, y = v}
  series_g[j] = {name = l[1], x = xs, y = g}
end
if crlab.plot.available() then
  os.execute('mkdir -p ' .. outdir)
  crlab.plot.lines{file = outdir .. '/losses.png', title = 'Loss vs p_y (K = ' .. K .. ')',
                   xlabel = 'p_y', ylabel = 'loss', series = series_v, yrange = {-3, 4}}
  crlab.plot.lines{file = outdir .. '/gradients.png', title = '-dL/dz_y vs p_y (K = ' .. K .. ')',
                   xlabel = 'p_y', ylabel = '-dL/dz_y', series = series_g}
  print('\nwrote ' .. outdir .. '/losses.png and ' .. outdir .. '/gradients.png')
else
  print('\n(gnuplot not found: no plots written)')
end
