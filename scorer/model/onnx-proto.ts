// onnx-proto is CommonJS and exports the generated protobufjs namespace as `onnx`.
import onnxProto from 'onnx-proto';

export const { onnx } = onnxProto;
