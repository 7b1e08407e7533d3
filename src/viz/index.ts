/**
 * Visualisation helpers: standalone SVG charts (line, scatter, bar, confusion matrix), a dependency-free PNG
 * encoder with colour maps and image tiling, and terminal text charts. They work on plain numbers and typed
 * arrays, so they run in Node and in browsers and do not depend on the tensor classes.
 *
 * Computation graphs (`graph`, `trainingStepGraph`) are the exception: they trace and evaluate programs, and draw
 * them as Graphviz DOT and SVG (Graphviz in WebAssembly, loaded on first use). Also browser-safe.
 */
export { barChart, type BarChartOptions, type BarData, type SparklineOptions, sparkline } from "./ascii.ts";
export { type ConfusionSvgOptions, confusionMatrix, confusionMatrixSvg } from "./confusion.ts";
export {
  adler32,
  crc32,
  encodePng,
  type HeatmapOptions,
  heatmapPng,
  heatmapToRgb,
  type TileOptions,
  tileImages,
  upscale,
} from "./png.ts";
export {
  type BarPlotOptions,
  barPlot,
  type LinePlotOptions,
  type LineSeries,
  linePlot,
  type ScatterPlotOptions,
  scatterPlot,
} from "./svg-plot.ts";
export { escapeXml, linearTicks, logTicks, niceStep } from "./svg.ts";
export {
  Graph,
  type GraphOptions,
  type GraphValue,
  type GraphvizModule,
  graph,
  type ModuleTree,
  renderSvg,
  setGraphvizLoader,
} from "./graph.ts";
export {
  adjointName,
  type DotView,
  type GraphData,
  type OpInput,
  type OpNode,
  type ScopeNode,
  type Sweep,
  tangentName,
  toDot,
  type ValueNode,
} from "./graph-dot.ts";
export { type TrainingStepGraphOptions, trainingStepGraph } from "./graph-model.ts";
