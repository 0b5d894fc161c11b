"""Storage formats for N:M sparse weights and the compression-ratio math."""
from .bitmask import compress_24_bitmask, decompress_24_bitmask
from .cutlass import compress_24_cutlass, decompress_24_cutlass, meta_reorder_offsets
from .enumerative import decode_mask_enumerative, encode_mask_enumerative, pattern_bits, pattern_ranks, patterns_from_ranks
from .gemm import compress_24_gemm, decompress_24_gemm, gemm_24
from .generic import compress_nm, decompress_nm
from .packed import (compress_24_mma, compress_24_packed, compress_24_packed_t, decompress_24_mma,
                     decompress_24_packed, decompress_24_packed_t, meta_mma_from_nibbles)
from .huffman import decode_mask_huffman, encode_mask_huffman, huffman_code_lengths, huffman_expected_bits
from .ratio import AST_LIMIT, INDEX_CODINGS, ast_compression_ratio, compression_ratio, entropy_compression_ratio, index_bits

__all__ = [
    "compress_nm", "decompress_nm",
    "compress_24_cutlass", "decompress_24_cutlass", "meta_reorder_offsets",
    "compress_24_bitmask", "decompress_24_bitmask",
    "compress_24_packed", "decompress_24_packed", "compress_24_packed_t", "decompress_24_packed_t",
    "compress_24_mma", "decompress_24_mma", "meta_mma_from_nibbles",
    "compress_24_gemm", "decompress_24_gemm", "gemm_24",
    "encode_mask_enumerative", "decode_mask_enumerative", "pattern_bits", "pattern_ranks", "patterns_from_ranks",
    "encode_mask_huffman", "decode_mask_huffman", "huffman_code_lengths", "huffman_expected_bits",
    "compression_ratio", "index_bits", "ast_compression_ratio", "entropy_compression_ratio", "AST_LIMIT", "INDEX_CODINGS",
]
