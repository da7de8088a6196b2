export { Module, ModuleList, Parameter, Buffers } from './module.js';
export { Linear } from './linear.js';
export type { RowLayer, LinearOptions } from './linear.js';
