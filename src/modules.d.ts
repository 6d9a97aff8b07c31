// Module types for non-JS imports that wrangler (and the test pool) bundle.
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}
declare module "*.txt" {
  const text: string;
  export default text;
}
