"""Which TensorFlow graph ops may run when WeightLab evaluates a SavedModel or a frozen GraphDef.

Running a graph runs whatever ops the file author put in it. Most ops only
compute on tensors, but some reach outside the model: they read or write
files, call back into Python, talk to the network, start threads and queues,
or drive accelerators of another host. TensorFlow says so itself: its
``SECURITY.md`` ("TensorFlow models are programs") asks users to treat a model
as untrusted code.

A graph is evaluated without the user's trust only when **every** op it would
run is on :data:`ALLOWED_OPS`, an *allowlist* of pure computation plus the
in-memory state evaluation needs (variables, tensor lists and arrays, lookup
tables). Anything else is refused, naming the op and where it is (node and
function). A blocklist would not do: every TensorFlow release registers new
ops, and an op nobody has looked at must not run just because nobody listed it.

Every op of TensorFlow's registry is classified: allowed (:data:`ALLOWED_OPS`)
or denied with a reason (:data:`DENIED_OPS`, an explicit op -> reason table,
and :data:`DENIED_FAMILIES`, name patterns for whole families such as
datasets, TPU and XLA ops, summaries, queues, optimizers); :func:`classify`
says which. ``tests/test_graph_allowlist.py`` walks the registry of the
installed TensorFlow and fails on any op that is neither, or both, so an
upgrade cannot widen (or silently change) what runs. Denial only explains:
the check itself is ``op in ALLOWED_OPS``, so an unclassified op is refused
too.

Decisions worth knowing
-----------------------
* Random ops are allowed, seeded or not: they change no state outside the model.
* ``Print``/``PrintV2`` are denied: they write to the process's standard
  streams, and ``PrintV2`` appends to any file its ``output_stream`` names.
  ``Assert`` and ``CheckNumerics`` (which only fail) are allowed.
* Media decoders and encoders (JPEG, PNG, GIF, BMP, WebP, JPEG XL, WAV) and the
  parsers of serialized records (``tf.Example``, ``TensorProto``, JSON,
  compressed strings) are denied: they parse attacker-made bytes in native
  code, and evaluation feeds arrays, never encoded inputs.
* Variable reads, assignments and scatters, and in-memory lookup tables (Keras
  ``StringLookup``/``IntegerLookup``) are allowed: their state lives in the
  worker's memory and dies with it. Optimizer steps (``Apply*``), queues,
  barriers, staging areas, accumulators, mutexes and session tensors are denied.
* Checkpoint I/O (:data:`CHECKPOINT_IO_OPS`) is denied, except inside a
  SavedModel's own saver (see below).
* Internal ops (``_Send``, ``_Recv``, ``_Arg``...) are denied, except the fused
  kernels Grappler writes into optimized graphs (``_FusedMatMul``,
  ``_FusedConv2D``...).

What is scanned
---------------
Nodes are read as protocol buffers (this module imports no TensorFlow)
*before* :func:`tf.saved_model.load` or :func:`tf.graph_util.import_graph_def`
is called. A node whose op names a function of the graph's library is a call:
the function's body is scanned. Attributes of type ``func``/``list(func)``
(``If``/``While`` branches, ``PartitionedCall`` targets, nested function
attributes) are followed the same way; a name there that is no library
function is run by TensorFlow as the registered op of that name, so it must be
on the allowlist itself. A function's registered gradient function is scanned
with it.

GraphDef
    Only the nodes the chosen outputs depend on (through data and control
    inputs) and the functions they reach: a ``tf.compat.v1.Session`` runs only
    that subgraph, and importing a graph runs nothing.
SavedModel
    Every node and every library function, except the SavedModel's own
    *saver*: the nodes the ``SaverDef`` names (``save_tensor_name``,
    ``restore_op_name``), the nodes they depend on, and the functions reached
    only from there (``__inference__traced_save_N`` /
    ``__inference__traced_restore_N`` in TF2 exports). Inside the saver,
    checkpoint I/O is allowed besides :data:`ALLOWED_OPS`:
    ``tf.saved_model.load`` never runs the TF2 saver (it restores variables
    with ops it builds itself), and for TF1 SavedModels it runs only the
    restore op, which it feeds with the SavedModel's own ``variables/`` path.
    Scanning everything else, rather than only what the chosen signature
    reaches, is deliberate: loading a SavedModel may run functions no
    signature calls (resource and table initializers, ``saveable`` restore
    functions, a TF1 ``main_op``), and a refused file can still be trusted
    explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from ..core.errors import EngineError

__all__ = [
    "ALLOWED_GROUPS",
    "ALLOWED_OPS",
    "CHECKPOINT_IO_OPS",
    "DENIED_FAMILIES",
    "DENIED_OPS",
    "Violation",
    "check_graph_def",
    "check_saved_model",
    "classify",
    "denied_reason",
    "find_violations",
]


def _names(text: str) -> frozenset[str]:
    """The op names of a whitespace-separated block."""
    return frozenset(text.split())


# -- the allowlist ------------------------------------------------------------------------------------
#: Group -> op names that may run without trust. Groups follow TensorFlow's op
#: modules (``gen_math_ops``...), minus what the denied table takes out of them.
ALLOWED_GROUPS: dict[str, frozenset[str]] = {
    # Element-wise arithmetic, comparisons, reductions, matrix products, segment
    # reductions, quantized arithmetic, bitwise and special functions.
    "math": _names("""
        Abs AccumulateNV2 Acos Acosh Add AddN AddV2 All Angle Any ApproximateEqual ArgMax ArgMin
        Asin Asinh Atan Atan2 Atanh BatchMatMul BatchMatMulV2 BatchMatMulV3 BesselI0 BesselI0e
        BesselI1 BesselI1e BesselJ0 BesselJ1 BesselK0 BesselK0e BesselK1 BesselK1e BesselY0 BesselY1
        Betainc Bincount BitwiseAnd BitwiseOr BitwiseXor Bucketize Cast Ceil ClipByValue Complex
        ComplexAbs Conj Cos Cosh Cross Cumprod Cumsum CumulativeLogsumexp Dawsn DenseBincount
        Digamma Div DivNoNan Equal Erf Erfc Erfinv EuclideanNorm Exp Expint Expm1 Floor FloorDiv
        FloorMod FresnelCos FresnelSin Greater GreaterEqual HistogramFixedWidth Igamma IgammaGradA
        Igammac Imag Inv InvGrad Invert IsFinite IsInf IsNan LeftShift Less LessEqual Lgamma
        LinSpace Log Log1p LogicalAnd LogicalNot LogicalOr MatMul Max Maximum Mean Min Minimum Mod
        Mul MulNoNan Ndtri Neg NextAfter NotEqual Polygamma PopulationCount Pow Prod
        QuantizeDownAndShrinkRange QuantizedAdd QuantizedMatMul QuantizedMul RaggedBincount Range
        Real RealDiv Reciprocal ReciprocalGrad RequantizationRange RequantizationRangePerChannel
        Requantize RequantizePerChannel RightShift Rint Round Rsqrt RsqrtGrad SegmentMax
        SegmentMaxV2 SegmentMean SegmentMin SegmentMinV2 SegmentProd SegmentProdV2 SegmentSum
        SegmentSumV2 Select SelectV2 Sigmoid SigmoidGrad Sign Sin Sinh SobolSample SparseBincount
        SparseMatMul SparseSegmentMean SparseSegmentMeanGrad SparseSegmentMeanGradV2
        SparseSegmentMeanWithNumSegments SparseSegmentSqrtN SparseSegmentSqrtNGrad
        SparseSegmentSqrtNGradV2 SparseSegmentSqrtNWithNumSegments SparseSegmentSum
        SparseSegmentSumGrad SparseSegmentSumGradV2 SparseSegmentSumWithNumSegments Spence Sqrt
        SqrtGrad Square SquaredDifference Sub Sum Tan Tanh TanhGrad TruncateDiv TruncateMod
        UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd UnsortedSegmentSum Xdivy Xlog1py
        Xlogy Zeta
        KthOrderStatistic MakeUnique TopKUnique TopKWithUnique StochasticCastToInt
    """),
    # Neural-network kernels and their gradients: convolutions, pooling,
    # normalization, activations, losses, top-k.
    "nn": _names("""
        ApproxTopK AvgPool AvgPool3D AvgPool3DGrad AvgPoolGrad BatchNormWithGlobalNormalization
        BatchNormWithGlobalNormalizationGrad BiasAdd BiasAddGrad BiasAddV1 Conv Conv2D
        Conv2DBackpropFilter Conv2DBackpropFilterV2 Conv2DBackpropInput Conv2DBackpropInputV2 Conv3D
        Conv3DBackpropFilter Conv3DBackpropFilterV2 Conv3DBackpropInput Conv3DBackpropInputV2
        DataFormatDimMap DataFormatVecPermute DepthwiseConv2dNative
        DepthwiseConv2dNativeBackpropFilter DepthwiseConv2dNativeBackpropInput Dilation2D
        Dilation2DBackpropFilter Dilation2DBackpropInput Elu EluGrad FractionalAvgPool
        FractionalAvgPoolGrad FractionalMaxPool FractionalMaxPoolGrad FusedBatchNorm
        FusedBatchNormGrad FusedBatchNormGradV2 FusedBatchNormGradV3 FusedBatchNormV2
        FusedBatchNormV3 FusedPadConv2D FusedResizeAndPadConv2D InTopK InTopKV2 IsotonicRegression
        L2Loss LRN LRNGrad LeakyRelu LeakyReluGrad LogSoftmax MaxPool MaxPool3D MaxPool3DGrad
        MaxPool3DGradGrad MaxPoolGrad MaxPoolGradGrad MaxPoolGradGradV2 MaxPoolGradGradWithArgmax
        MaxPoolGradV2 MaxPoolGradWithArgmax MaxPoolV2 MaxPoolWithArgmax NthElement QuantizedAvgPool
        QuantizedBatchNormWithGlobalNormalization QuantizedBiasAdd QuantizedConv2D
        QuantizedConv2DAndRelu QuantizedConv2DAndReluAndRequantize QuantizedConv2DAndRequantize
        QuantizedConv2DPerChannel QuantizedConv2DWithBias QuantizedConv2DWithBiasAndRelu
        QuantizedConv2DWithBiasAndReluAndRequantize QuantizedConv2DWithBiasAndRequantize
        QuantizedConv2DWithBiasSignedSumAndReluAndRequantize QuantizedConv2DWithBiasSumAndRelu
        QuantizedConv2DWithBiasSumAndReluAndRequantize QuantizedDepthwiseConv2D
        QuantizedDepthwiseConv2DWithBias QuantizedDepthwiseConv2DWithBiasAndRelu
        QuantizedDepthwiseConv2DWithBiasAndReluAndRequantize QuantizedMatMulWithBias
        QuantizedMatMulWithBiasAndDequantize QuantizedMatMulWithBiasAndRelu
        QuantizedMatMulWithBiasAndReluAndRequantize QuantizedMatMulWithBiasAndRequantize
        QuantizedMaxPool QuantizedRelu QuantizedRelu6 QuantizedReluX Relu Relu6 Relu6Grad ReluGrad
        Selu SeluGrad Softmax SoftmaxCrossEntropyWithLogits Softplus SoftplusGrad Softsign
        SoftsignGrad SparseSoftmaxCrossEntropyWithLogits TopK TopKV2
        CTCBeamSearchDecoder CTCGreedyDecoder CTCLoss CTCLossV2
        UniformDequantize UniformQuantize UniformQuantizedAdd UniformQuantizedClipByValue
        UniformQuantizedConvolution UniformQuantizedConvolutionHybrid UniformQuantizedDot
        UniformQuantizedDotHybrid UniformRequantize
    """),
    # Fused kernels Grappler writes into optimized graphs (the only internal ops allowed).
    "fused": _names("""
        _FusedBatchNormEx _FusedBatchNormGradEx _FusedConv2D _FusedConv3D _FusedDepthwiseConv2dNative
        _FusedMatMul _FusedQuantizedConv2D _FusedQuantizedDepthwiseConv2D
    """),
    # Recurrent cells: the fused LSTM/GRU kernels and cuDNN RNNs (Keras 2 LSTM/GRU
    # SavedModels carry a cuDNN variant of every recurrent function).
    "rnn": _names("""
        BlockLSTM BlockLSTMGrad BlockLSTMGradV2 BlockLSTMV2 GRUBlockCell GRUBlockCellGrad
        LSTMBlockCell LSTMBlockCellGrad
        CudnnRNN CudnnRNNBackprop CudnnRNNBackpropV2 CudnnRNNBackpropV3 CudnnRNNCanonicalToParams
        CudnnRNNCanonicalToParamsV2 CudnnRNNParamsSize CudnnRNNParamsToCanonical
        CudnnRNNParamsToCanonicalV2 CudnnRNNV2 CudnnRNNV3
    """),
    # Shapes, slicing, gathering, concatenation, padding, constants, placeholders
    # and identities; fake quantization. (ImmutableConst is denied: it maps a file.)
    "array": _names("""
        BatchMatrixBandPart BatchMatrixDiag BatchMatrixDiagPart BatchMatrixSetDiag BatchToSpace
        BatchToSpaceND Bitcast BroadcastArgs BroadcastGradientArgs BroadcastTo CheckNumerics
        CheckNumericsV2 Concat ConcatOffset ConcatV2 ConjugateTranspose Const DebugGradientIdentity
        DebugGradientRefIdentity DeepCopy DepthToSpace Dequantize Diag DiagPart EditDistance Empty
        EnsureShape ExpandDims ExtractImagePatches ExtractVolumePatches FakeQuantWithMinMaxArgs
        FakeQuantWithMinMaxArgsGradient FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsGradient
        FakeQuantWithMinMaxVarsPerChannel FakeQuantWithMinMaxVarsPerChannelGradient Fill Fingerprint
        Gather GatherNd GatherV2 GuaranteeConst Identity IdentityN InplaceAdd InplaceSub
        InplaceUpdate InvertPermutation ListDiff LowerBound MatrixBandPart MatrixDiag MatrixDiagPart
        MatrixDiagPartV2 MatrixDiagPartV3 MatrixDiagV2 MatrixDiagV3 MatrixSetDiag MatrixSetDiagV2
        MatrixSetDiagV3 MirrorPad MirrorPadGrad OneHot OnesLike Pack Pad PadV2 ParallelConcat
        Placeholder PlaceholderV2 PlaceholderWithDefault PreventGradient QuantizeAndDequantize
        QuantizeAndDequantizeV2 QuantizeAndDequantizeV3 QuantizeAndDequantizeV4
        QuantizeAndDequantizeV4Grad QuantizeV2 QuantizedConcat QuantizedConcatV2
        QuantizedInstanceNorm QuantizedReshape Rank RefIdentity Reshape Reverse ReverseSequence
        ReverseV2 Roll ScatterNd ScatterNdNonAliasingAdd Shape ShapeN Size Slice Snapshot
        SpaceToBatch SpaceToBatchND SpaceToDepth Split SplitV Squeeze StopGradient StridedSlice
        StridedSliceAssign StridedSliceGrad TensorScatterAdd TensorScatterMax TensorScatterMin
        TensorScatterSub TensorScatterUpdate TensorStridedSliceUpdate Tile TileGrad Transpose Unique
        UniqueV2 UniqueWithCounts UniqueWithCountsV2 Unpack UnravelIndex UpperBound Where ZerosLike
        HostConst DynamicPartition DynamicStitch ParallelDynamicStitch
    """),
    # Linear algebra and Fourier transforms.
    "linalg": _names("""
        BandedTriangularSolve BatchCholesky BatchCholeskyGrad BatchFFT BatchFFT2D BatchFFT3D
        BatchIFFT BatchIFFT2D BatchIFFT3D BatchMatrixDeterminant BatchMatrixInverse BatchMatrixSolve
        BatchMatrixSolveLs BatchMatrixTriangularSolve BatchSelfAdjointEig BatchSelfAdjointEigV2
        BatchSvd Cholesky CholeskyGrad Eig Einsum FFT FFT2D FFT3D FFTND IFFT IFFT2D IFFT3D IFFTND
        IRFFT IRFFT2D IRFFT3D IRFFTND LogMatrixDeterminant Lu MatrixDeterminant MatrixExponential
        MatrixInverse MatrixLogarithm MatrixSolve MatrixSolveLs MatrixSquareRoot
        MatrixTriangularSolve Qr RFFT RFFT2D RFFT3D RFFTND SelfAdjointEig SelfAdjointEigV2 Svd
        TridiagonalMatMul TridiagonalSolve
        KMC2ChainInitialization KmeansPlusPlusInitialization NearestNeighbors
    """),
    # Sparse tensors, CSR matrices, sets, counts, ragged tensors. (The
    # *SparseToTensorsMap ops, which park tensors in a session-wide container, are denied.)
    "sparse": _names("""
        CSRSparseMatrixComponents CSRSparseMatrixToDense CSRSparseMatrixToSparseTensor
        DenseCountSparseOutput DenseToCSRSparseMatrix DenseToDenseSetOperation
        DenseToSparseSetOperation RaggedCountSparseOutput
        SerializeManySparse SerializeSparse SetSize SparseAdd SparseAddGrad SparseConcat
        SparseCountSparseOutput SparseCross SparseCrossHashed SparseCrossV2 SparseDenseCwiseAdd
        SparseDenseCwiseDiv SparseDenseCwiseMul SparseFillEmptyRows SparseFillEmptyRowsGrad
        SparseMatrixAdd SparseMatrixMatMul SparseMatrixMul SparseMatrixNNZ SparseMatrixOrderingAMD
        SparseMatrixSoftmax SparseMatrixSoftmaxGrad SparseMatrixSparseCholesky
        SparseMatrixSparseMatMul SparseMatrixTranspose SparseMatrixZeros SparseReduceMax
        SparseReduceMaxSparse SparseReduceSum SparseReduceSumSparse SparseReorder SparseReshape
        SparseSlice SparseSliceGrad SparseSoftmax SparseSparseMaximum SparseSparseMinimum
        SparseSplit SparseTensorDenseAdd SparseTensorDenseMatMul SparseTensorToCSRSparseMatrix
        SparseToDense SparseToSparseSetOperation
        RaggedCross RaggedFillEmptyRows RaggedFillEmptyRowsGrad RaggedGather RaggedRange
        RaggedTensorFromVariant RaggedTensorToSparse RaggedTensorToTensor RaggedTensorToVariant
        RaggedTensorToVariantGradient
    """),
    # Strings (Keras TextVectorization and friends; RE2 regular expressions), and
    # the plain conversions between strings and numbers or raw bytes.
    "strings": _names("""
        AsString DecodeBase64 EncodeBase64 ReduceJoin RegexFullMatch RegexReplace
        StaticRegexFullMatch StaticRegexReplace StringFormat StringJoin StringLength StringLower
        StringNGrams StringSplit StringSplitV2 StringStrip StringToHashBucket StringToHashBucketFast
        StringToHashBucketStrong StringUpper Substr UnicodeDecode UnicodeDecodeWithOffsets
        UnicodeEncode UnicodeScript UnicodeTranscode UnsortedSegmentJoin
        StringToNumber DecodeRaw DecodePaddedRaw DecodeCSV SerializeTensor
        ShardedFilename ShardedFilespec
    """),
    # Image and audio arithmetic on decoded arrays (no codec: decoders are denied).
    "image": _names("""
        AdjustContrast AdjustContrastv2 AdjustHue AdjustSaturation CombinedNonMaxSuppression
        CropAndResize CropAndResizeGradBoxes CropAndResizeGradImage DrawBoundingBoxes
        DrawBoundingBoxesV2 ExtractGlimpse ExtractGlimpseV2 GenerateBoundingBoxProposals HSVToRGB
        ImageProjectiveTransformV2 ImageProjectiveTransformV3 NonMaxSuppression NonMaxSuppressionV2
        NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5 NonMaxSuppressionWithOverlaps
        QuantizedResizeBilinear RGBToHSV RandomCrop ResizeArea ResizeBicubic ResizeBicubicGrad
        ResizeBilinear ResizeBilinearGrad ResizeNearestNeighbor ResizeNearestNeighborGrad
        SampleDistortedBoundingBox SampleDistortedBoundingBoxV2 ScaleAndTranslate
        ScaleAndTranslateGrad StatelessSampleDistortedBoundingBox
        AudioMicrofrontend AudioSpectrogram Mfcc
    """),
    # Random numbers, stateful (seeded or not) and stateless, and candidate sampling.
    "random": _names("""
        AllCandidateSampler ComputeAccidentalHits FixedUnigramCandidateSampler
        LearnedUnigramCandidateSampler LogUniformCandidateSampler Multinomial NonDeterministicInts
        ParameterizedTruncatedNormal RandomGamma RandomGammaGrad RandomIndexShuffle RandomPoisson
        RandomPoissonV2 RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt
        RngReadAndSkip RngSkip StatefulRandomBinomial StatefulStandardNormal
        StatefulStandardNormalV2 StatefulTruncatedNormal StatefulUniform StatefulUniformFullInt
        StatefulUniformInt StatelessMultinomial StatelessParameterizedTruncatedNormal
        StatelessRandomBinomial StatelessRandomGammaV2 StatelessRandomGammaV3 StatelessRandomGetAlg
        StatelessRandomGetKeyCounter StatelessRandomGetKeyCounterAlg StatelessRandomNormal
        StatelessRandomNormalV2 StatelessRandomPoisson StatelessRandomUniform
        StatelessRandomUniformFullInt StatelessRandomUniformFullIntV2 StatelessRandomUniformInt
        StatelessRandomUniformIntV2 StatelessRandomUniformV2 StatelessShuffle
        StatelessTruncatedNormal StatelessTruncatedNormalV2 ThreadUnsafeUnigramCandidateSampler
        TruncatedNormal UniformCandidateSampler
    """),
    # Control flow: TF1 frames and switches, functional If/While/Case (their
    # branch functions are scanned), calls of library functions, assertions.
    "control_flow": _names("""
        ControlTrigger Enter Exit LoopCond Merge NextIteration NoOp RefEnter RefExit RefMerge
        RefNextIteration RefSelect RefSwitch Switch
        Case DeviceIndex FakeParam For If PartitionedCall StatefulPartitionedCall StatelessCase
        StatelessIf StatelessWhile SymbolicGradient ToBool While
        Assert
    """),
    # Variables, resource and TF1 reference ones: create, read, assign, scatter.
    # Restoring a SavedModel assigns its variables; evaluation reads them.
    "variables": _names("""
        AssignAddVariableOp AssignSubVariableOp AssignVariableOp DestroyResourceOp DisableCopyOnRead
        ReadVariableOp ResourceGather ResourceGatherNd ResourceScatterAdd ResourceScatterDiv
        ResourceScatterMax ResourceScatterMin ResourceScatterMul ResourceScatterSub
        ResourceScatterUpdate ResourceStridedSliceAssign VarHandleOp VarIsInitializedOp VariableShape
        Assign AssignAdd AssignSub CountUpTo DestroyTemporaryVariable IsVariableInitialized
        ResourceCountUpTo ResourceScatterNdAdd ResourceScatterNdMax ResourceScatterNdMin
        ResourceScatterNdSub ResourceScatterNdUpdate ScatterAdd ScatterDiv ScatterMax ScatterMin
        ScatterMul ScatterNdAdd ScatterNdMax ScatterNdMin ScatterNdSub ScatterNdUpdate ScatterSub
        ScatterUpdate TemporaryVariable Variable VariableV2
    """),
    # In-memory lookup tables (Keras StringLookup/IntegerLookup, tf.lookup)
    # filled from tensors. (Filling one from a file or a dataset is denied.)
    "lookup_tables": _names("""
        AnonymousHashTable AnonymousMutableDenseHashTable AnonymousMutableHashTable
        AnonymousMutableHashTableOfTensors HashTable HashTableV2 InitializeTable InitializeTableV2
        LookupTableExport LookupTableExportV2 LookupTableFind LookupTableFindV2 LookupTableImport
        LookupTableImportV2 LookupTableInsert LookupTableInsertV2 LookupTableRemoveV2
        LookupTableSize LookupTableSizeV2 MutableDenseHashTable MutableDenseHashTableV2
        MutableHashTable MutableHashTableOfTensors MutableHashTableOfTensorsV2 MutableHashTableV2
    """),
    # Per-step containers of tensors: TensorList/TensorMap (TF2 loops), TensorArray
    # and stacks (TF1 loops and their gradients), optionals, composite-tensor variants.
    "containers": _names("""
        CompositeTensorVariantFromComponents CompositeTensorVariantToComponents EmptyTensorList
        EmptyTensorMap OptionalFromValue OptionalGetValue OptionalHasValue OptionalNone
        TensorListConcat TensorListConcatLists TensorListConcatV2 TensorListElementShape
        TensorListFromTensor TensorListGather TensorListGetItem TensorListLength TensorListPopBack
        TensorListPushBack TensorListPushBackBatch TensorListReserve TensorListResize
        TensorListScatter TensorListScatterIntoExistingList TensorListScatterV2 TensorListSetItem
        TensorListSplit TensorListStack TensorMapErase TensorMapHasKey TensorMapInsert
        TensorMapLookup TensorMapSize TensorMapStackKeys
        Stack StackClose StackCloseV2 StackPop StackPopV2 StackPush StackPushV2 StackV2 TensorArray
        TensorArrayClose TensorArrayCloseV2 TensorArrayCloseV3 TensorArrayConcat TensorArrayConcatV2
        TensorArrayConcatV3 TensorArrayGather TensorArrayGatherV2 TensorArrayGatherV3 TensorArrayGrad
        TensorArrayGradV2 TensorArrayGradV3 TensorArrayGradWithShape TensorArrayPack TensorArrayRead
        TensorArrayReadV2 TensorArrayReadV3 TensorArrayScatter TensorArrayScatterV2
        TensorArrayScatterV3 TensorArraySize TensorArraySizeV2 TensorArraySizeV3 TensorArraySplit
        TensorArraySplitV2 TensorArraySplitV3 TensorArrayUnpack TensorArrayV2 TensorArrayV3
        TensorArrayWrite TensorArrayWriteV2 TensorArrayWriteV3
    """),
}

#: Every op a graph may run without the user's trust (the union of :data:`ALLOWED_GROUPS`).
ALLOWED_OPS: frozenset[str] = frozenset().union(*ALLOWED_GROUPS.values())


# -- what is denied, and why --------------------------------------------------------------------------
#: Checkpoint reading and writing (files named by a tensor); allowed only in a SavedModel's saver.
CHECKPOINT_IO_OPS: frozenset[str] = _names(
    "Save SaveV2 SaveSlices Restore RestoreV2 RestoreSlice MergeV2Checkpoints"
)

_SHARES = "shares tensors or locks across steps or sessions (queues, barriers, staging areas)"

_DENIED_GROUPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("reads or writes checkpoint files", CHECKPOINT_IO_OPS),
    ("calls a Python function of the running process", _names("PyFunc PyFuncStateless EagerPyFunc")),
    ("reads a file (tf.io.read_file)", _names("ReadFile")),
    ("writes a file (tf.io.write_file)", _names("WriteFile")),
    ("lists files matching a pattern", _names("MatchingFiles")),
    ("reads the files matching a glob pattern", _names("RecordInput")),
    ("memory-maps a file", _names("ImmutableConst")),
    ("reads a file into a lookup table", _names("InitializeTableFromTextFile InitializeTableFromTextFileV2")),
    ("reads checkpoint or vocabulary files", _names("LoadAndRemapMatrix GenerateVocabRemapping")),
    ("reads a text corpus file (word2vec)", _names("Skipgram NegTrain")),
    ("writes tensors or statistics to files", _names("DumpTensor CalibrationStatisticsSaver CustomAggregator")),
    ("may read a protobuf descriptor file", _names("DecodeProtoV2 EncodeProto")),
    ("configures a file system", _names("FileSystemSetConfiguration")),
    (
        "reads or writes files (tf.data)",
        _names("""
            TFRecordDataset TFRecordDatasetV2 TextLineDataset FixedLengthRecordDataset
            FixedLengthRecordDatasetV2 CSVDataset CSVDatasetV2 ExperimentalCSVDataset LMDBDataset
            ExperimentalLMDBDataset MatchingFilesDataset ExperimentalMatchingFilesDataset SaveDataset
            SaveDatasetV2 LoadDataset SnapshotDataset SnapshotDatasetV2 SnapshotChunkDataset
            SnapshotDatasetReader SnapshotNestedDatasetReader ListSnapshotChunksDataset DistributedSave
            CacheDataset CacheDatasetV2 DatasetToTFRecord ExperimentalDatasetToTFRecord
        """),
    ),
    ("opens a database (tf.data)", _names("SqlDataset ExperimentalSqlDataset")),
    (
        "talks to a tf.data service over the network",
        _names("""
            DataServiceDataset DataServiceDatasetV2 DataServiceDatasetV3 DataServiceDatasetV4
            RegisterDataset RegisterDatasetV2
        """),
    ),
    ("writes summary files (tf.data statistics)", _names("StatsAggregatorSetSummaryWriter")),
    (
        "is part of a tf.data pipeline",
        _names("""
            DummyIterationCounter CompressElement UncompressElement ComputeBatchSize CheckPinned
            GetElementAtIndex GetOptions MapDefun WindowOp ThreadPoolHandle ExperimentalThreadPoolHandle
        """),
    ),
    ("writes to the process's standard streams or to a file (tf.print)", _names("Print PrintV2")),
    ("writes summary event files", _names("ImportEvent")),
    (
        "sends tensors to a debugger (file or gRPC URL)",
        _names("""
            Copy CopyHost DebugIdentity DebugIdentityV2 DebugIdentityV3 DebugNanCount
            DebugNumericSummary DebugNumericSummaryV2
        """),
    ),
    ("terminates or stalls the process", _names("Abort SleepOp SleepIdentityOp")),
    ("reads the host's clock or configuration", _names("Timestamp IsTensorFloat32Enabled GetDeadline")),
    (
        "decodes or encodes media in native code (evaluation feeds arrays)",
        _names("""
            DecodeAndCropJpeg DecodeBmp DecodeGif DecodeImage DecodeJpeg DecodeJxl DecodePng DecodeWebP
            DecodeWav EncodeJpeg EncodeJpegVariableQuality EncodePng EncodeWav ExtractJpegShape
        """),
    ),
    (
        "parses serialized records (evaluation feeds arrays)",
        _names("""
            ParseExample ParseExampleV2 ParseSequenceExample ParseSequenceExampleV2 ParseSingleExample
            ParseSingleSequenceExample ParseTensor DecodeJSONExample DecodeCompressed DeserializeSparse
            DeserializeManySparse
        """),
    ),
    (
        _SHARES,
        _names("""
            MapClear MapIncompleteSize MapPeek MapSize MapStage MapUnstage MapUnstageNoKey
            OrderedMapClear OrderedMapIncompleteSize OrderedMapPeek OrderedMapSize OrderedMapStage
            OrderedMapUnstage OrderedMapUnstageNoKey
            GetSessionHandle GetSessionHandleV2 GetSessionTensor DeleteSessionTensor
            AddManySparseToTensorsMap AddSparseToTensorsMap TakeManySparseFromTensorsMap
            Batch BatchFunction Unbatch UnbatchGrad MutexV2 MutexLock ConsumeMutexLock
            MakeWeakResourceHandle
        """),
    ),
    (
        "sends tensors to another device or host",
        _names("""
            Send Recv RemoteCall SyncDevice AllToAll CrossReplicaSum WorkerHeartbeat Prelinearize
            PrelinearizeTuple CopyToMesh CopyToMeshGrad Relayout RelayoutLike GlobalIterId
            UpdateTaskIdAndGlobalCoreArray MergeDedupData SplitDedupData
        """),
    ),
    ("runs code given as MLIR text", _names("MlirPassthroughOp")),
    ("trains a model (optimizer step)", _names("SdcaFprint SdcaOptimizer SdcaOptimizerV2 SdcaShrinkL1")),
    (
        "is an op of TensorFlow's own tests",
        _names("""
            A Attr AttrBool AttrBoolList AttrDefault AttrEmptyListDefault AttrEnum AttrEnumList AttrFloat
            AttrListDefault AttrListMin AttrListTypeDefault AttrMin AttrPartialShape AttrPartialShapeList
            AttrShape AttrShapeList AttrTypeDefault B Binary ComplexStruct ConstructionFails CopyOp DefaultAttrs DevicePlacementOp
            DtypeWithDefaultOp Fact FiveFloatOutputs FloatInput FloatOutput FloatOutputStringOutput Foo1
            Foo2 Foo3 FuncAttr FuncListAttr GraphDefVersion InPolymorphicTwice Int64Output IntAttr
            IntInput IntInputFloatInput IntInputIntOutput IntOutput IntOutputFloatOutput
            IsResourceHandleRefCounting KernelLabel KernelLabelRequired ListInput ListOutput MixedStruct
            NInPolymorphicTwice NInTwice NInTwoTypeVariables NIntsIn NIntsOut NIntsOutDefault
            NPolymorphicIn NPolymorphicOut NPolymorphicOutDefault NPolymorphicRestrictIn
            NPolymorphicRestrictOut Namespace>TestStringOutput None Old OpWithDefaultAttr
            OpWithFutureDefaultAttr OutT OutTypeList OutTypeListRestrict Polymorphic
            PolymorphicDefaultOut PolymorphicOut RefIn RefInputFloatInput RefInputFloatInputIntOutput
            RefInputIntInput RefOut RefOutput RefOutputFloatOutput RequiresOlderGraphVersion
            ReservedAttr ReservedInput ResourceCreateOp ResourceInitializedOp ResourceUsingOp Restrict
            Simple SimpleStruct StringListAttr StubResourceHandleOp TestAttr TestStringOutput TwoFloatInputs
            TwoFloatInputsFloatOutput TwoFloatInputsIntOutput TwoFloatOutputs TwoIntInputs TwoIntOutputs
            TwoRefsIn TypeList TypeListRestrict TypeListTwice Unary
        """),
    ),
)

#: Op -> why it is denied, for the ops denied by name.
DENIED_OPS: dict[str, str] = {op: why for why, ops in _DENIED_GROUPS for op in ops}

#: ``(pattern, why)``: whole families of denied ops, matched with ``re.search`` on the op name.
DENIED_FAMILIES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), why)
    for pattern, why in (
        # tf.data: datasets read files, run functions on their own threads, talk to
        # the tf.data service; iterators, seed generators, caches and stats belong to them.
        (r"Dataset|Iterator|SeedGenerator|MemoryCache|StatsAggregator", "is part of a tf.data pipeline"),
        (r"Reader", "reads files (TF1 reader)"),
        (r"Summary", "writes or builds training summaries"),
        (r"Queue|Barrier|Accumulator|[Ss]tage", _SHARES),
        (r"^Rpc|Rpc[A-Z]", "makes remote procedure calls"),
        (r"Collective|Nccl|^DTensor", "communicates with other devices or hosts (collectives)"),
        (
            r"TPU|Tpu|Xla|Infeed|Outfeed|SparseCore|CooTensor|Minibatch|DedupData",
            "runs or feeds TPU/XLA programs",
        ),
        (r"^(Resource)?(Sparse)?Apply[A-Z]", "trains a model (optimizer step)"),
        (r"^BoostedTrees|BoostedTrees", "builds or trains boosted trees (estimator resources)"),
        (r"^Risc", "belongs to an experimental op set without kernels"),
        (r"^_(?!Fused)", "is an internal op TensorFlow inserts itself (devices, sends, receives)"),
    )
)


def denied_reason(op: str) -> str | None:
    """Why ``op`` is denied, or None when it is not explicitly denied.

    Parameters
    ----------
    op:
        An op type name (``NodeDef.op``).

    Returns
    -------
    str or None
        From :data:`DENIED_OPS` first, then the first matching
        :data:`DENIED_FAMILIES` pattern.
    """
    why = DENIED_OPS.get(op)
    if why is not None:
        return why
    return next((why for pattern, why in DENIED_FAMILIES if pattern.search(op)), None)


def classify(op: str) -> str | None:
    """``"allowed"``, the reason ``op`` is denied, or None for an op nobody classified.

    Evaluation refuses every op that is not ``"allowed"``; None exists so that
    the registry test can find ops a TensorFlow upgrade added.
    """
    return "allowed" if op in ALLOWED_OPS else denied_reason(op)


# -- scanning ------------------------------------------------------------------------------------------
class Violation(NamedTuple):
    """One op that may not run: its type, why, and where (``"node 'n' of function 'f'"``)."""

    op: str
    why: str
    where: str


def _reason(op: str) -> str:
    return denied_reason(op) or "is not on WeightLab's allowlist of pure computation"


def _attr_functions(value: Any) -> Iterator[tuple[str, Any]]:
    """``(name, NameAttrList)`` of every function an ``AttrValue`` names, nested ones included."""
    if value.HasField("func"):
        yield value.func.name, value.func
        for inner in value.func.attr.values():
            yield from _attr_functions(inner)
    elif value.HasField("list"):
        for func in value.list.func:
            yield func.name, func
            for inner in func.attr.values():
                yield from _attr_functions(inner)


def _attr_refs(node: Any) -> Iterator[tuple[str, str]]:
    """``(attribute, function or op name)`` for every function-valued attribute of ``node``."""
    for key, value in node.attr.items():
        for name, _ in _attr_functions(value):
            if name:  # an unset optional function attribute names nothing
                yield key, name


def _called(node: Any, functions: dict[str, Any]) -> list[str]:
    """Names of library functions ``node`` calls: its op, and its function-valued attributes."""
    out = [node.op] if node.op in functions else []
    out += [name for _, name in _attr_refs(node) if name in functions]
    return out


def _producers(names: Iterable[str]) -> list[str]:
    """Node names of input references (``"a:1"``, ``"^b"`` -> ``"a"``, ``"b"``)."""
    return [name.lstrip("^").split(":")[0] for name in names]


def _closure(roots: Iterable[str], nodes: dict[str, Any]) -> set[str]:
    """The nodes ``roots`` depend on (themselves included), through data and control inputs."""
    seen: set[str] = set()
    stack = [r for r in roots if r in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack += [p for p in _producers(nodes[name].input) if p in nodes and p not in seen]
    return seen


def _function_closure(names: Iterable[str], functions: dict[str, Any], gradients: dict[str, str]) -> set[str]:
    """Functions ``names``, every function they call and their gradient functions, transitively."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        stack += [f for node in functions[name].node_def for f in _called(node, functions)]
        if name in gradients:
            stack.append(gradients[name])
    return seen


def _scan(
    nodes: Iterable[Any], where: str, functions: dict[str, Any], extra: frozenset[str] = frozenset()
) -> Iterator[Violation]:
    """The violations among ``nodes`` (of the graph or of one function, named by ``where``).

    A node whose op is a library function is a call; ``extra`` ops are allowed
    besides :data:`ALLOWED_OPS` (checkpoint I/O in a saver).
    """

    def refused(name: str) -> bool:
        if name in ALLOWED_OPS or name in extra:
            return False
        # A library function named like a denied op: TensorFlow refuses to import
        # such a library, but should it run, the name might mean the op. (Only
        # ops denied by name: family patterns such as ``^_`` match function names.)
        return name not in functions or name in DENIED_OPS

    for node in nodes:
        if refused(node.op):
            yield Violation(node.op, _reason(node.op), f"node {node.name!r} of {where}")
        for key, name in _attr_refs(node):
            if refused(name):
                yield Violation(name, _reason(name), f"attribute {key!r} of node {node.name!r} of {where}")


def _raise(violations: list[Violation], shown: str | os.PathLike[str] | None) -> None:
    if not violations:
        return
    first = violations[0]
    others = sorted({v.op for v in violations[1:]} - {first.op})
    more = f" (also {', '.join(others[:8])}{', ...' if len(others) > 8 else ''})" if others else ""
    raise EngineError(
        f"the graph runs op {first.op}, which {first.why}, at {first.where}{more}; evaluation runs "
        "the graph, so it is off unless you trust the file",
        shown,
    )


def _library(graph_def: Any) -> tuple[dict[str, Any], dict[str, str]]:
    functions = {f.signature.name: f for f in graph_def.library.function}
    gradients = {g.function_name: g.gradient_func for g in graph_def.library.gradient}
    return functions, gradients


def find_violations(graph_def: Any, outputs: Iterable[str]) -> list[Violation]:
    """Every op the ``outputs`` of a frozen graph depend on that is not allowed, in graph order.

    Parameters
    ----------
    graph_def:
        A ``tf.compat.v1.GraphDef`` (parsed, not imported).
    outputs:
        Tensor or node names the evaluation fetches (``"y:0"``, ``"y"``).

    Returns
    -------
    list of Violation
        Empty when the subgraph may run without trust.
    """
    nodes = {n.name: n for n in graph_def.node}
    functions, gradients = _library(graph_def)
    needed = _closure(_producers(outputs), nodes)
    ordered = [n for n in graph_def.node if n.name in needed]
    out = list(_scan(ordered, "the graph", functions))
    called = _function_closure((f for n in ordered for f in _called(n, functions)), functions, gradients)
    for name in sorted(called):
        out += _scan(functions[name].node_def, f"function {name!r}", functions)
    return out


def check_graph_def(
    graph_def: Any, outputs: Iterable[str], shown: str | os.PathLike[str] | None = None
) -> None:
    """Refuse a frozen graph whose ``outputs`` depend on an op that is not on :data:`ALLOWED_OPS`.

    Parameters
    ----------
    graph_def:
        A ``tf.compat.v1.GraphDef`` (parsed, not imported).
    outputs:
        Tensor or node names the evaluation fetches (``"y:0"``, ``"y"``).
    shown:
        The file named in the error.

    Raises
    ------
    EngineError
        Naming the first such op, why it is refused and the node (and
        function) holding it, and the other refused op types.
    """
    _raise(find_violations(graph_def, outputs), shown)


def check_saved_model(meta_graph: Any, shown: str | os.PathLike[str] | None = None) -> None:
    """Refuse a SavedModel MetaGraph holding an op that is not allowed, outside its own saver.

    See the module docstring for what is scanned and why.

    Parameters
    ----------
    meta_graph:
        The ``MetaGraphDef`` that will be loaded (parsed from ``saved_model.pb``).
    shown:
        The folder named in the error.

    Raises
    ------
    EngineError
        Naming the first such op, why it is refused and the node (and
        function) holding it, and the other refused op types.
    """
    graph_def = meta_graph.graph_def
    nodes = {n.name: n for n in graph_def.node}
    functions, gradients = _library(graph_def)
    saver = meta_graph.saver_def
    saver_roots = [name for name in (saver.save_tensor_name, saver.restore_op_name) if name]
    saver_nodes = _closure(_producers(saver_roots), nodes)
    other_nodes = [n for n in graph_def.node if n.name not in saver_nodes]
    called_anywhere = {f for n in graph_def.node for f in _called(n, functions)}
    called_anywhere |= {f for fn in functions.values() for n in fn.node_def for f in _called(n, functions)}
    called_anywhere |= set(gradients.values())
    orphans = [name for name in functions if name not in called_anywhere]
    reached_otherwise = _function_closure(
        [f for n in other_nodes for f in _called(n, functions)] + orphans, functions, gradients
    )
    saver_only = (
        _function_closure(
            (f for n in graph_def.node if n.name in saver_nodes for f in _called(n, functions)),
            functions,
            gradients,
        )
        - reached_otherwise
    )
    violations = list(_scan(other_nodes, "the graph", functions))
    violations += _scan(
        (n for n in graph_def.node if n.name in saver_nodes), "the saver", functions, CHECKPOINT_IO_OPS
    )
    for name in sorted(set(functions) - saver_only):
        violations += _scan(functions[name].node_def, f"function {name!r}", functions)
    for name in sorted(saver_only):
        violations += _scan(functions[name].node_def, f"saver function {name!r}", functions, CHECKPOINT_IO_OPS)
    _raise(violations, shown)
