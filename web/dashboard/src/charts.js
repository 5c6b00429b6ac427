// Live line charts (uPlot: small, fast, canvas) fed from the polled history.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const COLORS = ['#2f6fdf', '#1f9d55', '#d9822b', '#c62828', '#7c4dff', '#00838f', '#ad1457', '#5d4037'];

export function lineChart(el, { title, series, yLabel }) {
  const opts = {
    title,
    width: Math.max(300, el.clientWidth || 480),
    height: 220,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    axes: [{}, { label: yLabel, size: 60 }],
    series: [{}, ...series.map((s, i) => ({
      label: s,
      stroke: COLORS[i % COLORS.length],
      width: 2,
      spanGaps: false,
      points: { show: false },
    }))],
  };
  const u = new uPlot(opts, [[], ...series.map(() => [])], el);
  const ro = new ResizeObserver(() => u.setSize({ width: Math.max(300, el.clientWidth), height: 220 }));
  ro.observe(el);
  return {
    u,
    set(data) { u.setData(data); },
    destroy() { ro.disconnect(); u.destroy(); },
  };
}
