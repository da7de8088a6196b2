// A one-node ONNX model, C = A·B (MatMul) or C = Aᵀ·B (Gemm with transA = 1), written as protobuf
// bytes by hand, so the gemm bench can time onnxruntime-web's matmul without an ONNX toolchain.
// Fields of onnx.proto (ModelProto, GraphProto, NodeProto, ValueInfoProto, TypeProto,
// TensorShapeProto, AttributeProto), float32 inputs A [M, K] (transposed: [K, M]) and B [K, N].

const utf8 = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}
/** wire types: 0 varint, 2 length-delimited */
const tag = (field: number, wire: 0 | 2): number[] => varint(field * 8 + wire);
const bytes = (field: number, b: number[]): number[] => [...tag(field, 2), ...varint(b.length), ...b];
const str = (field: number, s: string): number[] => bytes(field, [...utf8.encode(s)]);
const int = (field: number, n: number): number[] => [...tag(field, 0), ...varint(n)];

/** ValueInfoProto { name = 1, type = 2: TypeProto { tensor_type = 1: { elem_type = 1 (FLOAT), shape = 2: { dim = 1: { dim_value = 1 } } } } } */
function floatInput(name: string, dims: number[]): number[] {
  const shape = dims.flatMap((d) => bytes(1, int(1, d)));
  return [...str(1, name), ...bytes(2, bytes(1, [...int(1, 1), ...bytes(2, shape)]))];
}

/** ModelProto bytes (IR 8, opset 13) with inputs A, B and output C */
export function onnxMatMul(M: number, K: number, N: number, transA: boolean): Uint8Array {
  // NodeProto { input = 1, output = 2, name = 3, op_type = 4, attribute = 5: { name = 1, i = 3, type = 20 (INT = 2) } }
  const node = [...str(1, 'A'), ...str(1, 'B'), ...str(2, 'C'), ...str(3, 'matmul'), ...(transA ? [...str(4, 'Gemm'), ...bytes(5, [...str(1, 'transA'), ...int(3, 1), ...int(20, 2)])] : str(4, 'MatMul'))];
  // GraphProto { node = 1, name = 2, input = 11, output = 12 }
  const graph = [...bytes(1, node), ...str(2, 'matmul'), ...bytes(11, floatInput('A', transA ? [K, M] : [M, K])), ...bytes(11, floatInput('B', [K, N])), ...bytes(12, floatInput('C', [M, N]))];
  // ModelProto { ir_version = 1, graph = 7, opset_import = 8: { domain = 1, version = 2 } }
  return new Uint8Array([...int(1, 8), ...bytes(8, [...str(1, ''), ...int(2, 13)]), ...bytes(7, graph)]);
}
