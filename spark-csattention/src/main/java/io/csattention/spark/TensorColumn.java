package io.csattention.spark;

import io.csattention.format.Half;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * How a tensor (a chunk of rows of a [rows, d] matrix, or one vector) is stored in a column: {@code array<float>}
 * (row-major, flattened), {@code array<array<float>>} (one inner array per row), {@code binary} float32 or
 * float16 little-endian (row-major, flattened). Checked once on the driver against the schema.
 */
enum TensorColumn implements Serializable {
    FLOATS,
    ROWS,
    BINARY_FLOAT32,
    BINARY_FLOAT16;

    static final String TYPES = "array<float>, array<array<float>>, binary (float32) or binary (float16, with "
            + "option binaryType=float16)";

    /** The encoding of column {@code name}, or a one-line error naming the column, its type and what is accepted. */
    static TensorColumn of(StructType schema, String table, String name, boolean float16, boolean allowRows) {
        StructField field = field(schema, table, name);
        DataType type = field.dataType();
        if (type.equals(DataTypes.createArrayType(DataTypes.FloatType, true))
                || type.equals(DataTypes.createArrayType(DataTypes.FloatType, false))) {
            return FLOATS;
        }
        if (allowRows && type instanceof ArrayType outer && outer.elementType() instanceof ArrayType inner
                && inner.elementType().equals(DataTypes.FloatType)) {
            return ROWS;
        }
        if (type.equals(DataTypes.BinaryType)) {
            return float16 ? BINARY_FLOAT16 : BINARY_FLOAT32;
        }
        throw new IllegalArgumentException(table + " column " + name + " must be " + (allowRows ? TYPES
                : "array<float> or binary") + "; " + name + "=" + type.simpleString());
    }

    /** The field {@code name}, or a one-line error listing the columns there are. */
    static StructField field(StructType schema, String table, String name) {
        for (StructField f : schema.fields()) {
            if (f.name().equalsIgnoreCase(name)) {
                return f;
            }
        }
        throw new IllegalArgumentException(table + " must have a column " + name + "; columns="
                + Arrays.toString(schema.fieldNames()));
    }

    static int index(StructType schema, String table, String name) {
        return schema.fieldIndex(field(schema, table, name).name());
    }

    /** Requires {@code name} to be of one of the given types. */
    static int typed(StructType schema, String table, String name, DataType... types) {
        StructField f = field(schema, table, name);
        for (DataType t : types) {
            if (f.dataType().equals(t)) {
                return schema.fieldIndex(f.name());
            }
        }
        throw new IllegalArgumentException(table + " column " + name + " must be "
                + String.join(" or ", Arrays.stream(types).map(DataType::simpleString).toList()) + "; " + name + "="
                + f.dataType().simpleString());
    }

    /** The floats of column {@code ordinal} of an internal row, flattened row-major. */
    float[] floats(InternalRow row, int ordinal, int dim) {
        return switch (this) {
            case FLOATS -> row.getArray(ordinal).toFloatArray();
            case ROWS -> {
                ArrayData rows = row.getArray(ordinal);
                float[] out = new float[rows.numElements() * dim];
                for (int r = 0; r < rows.numElements(); r++) {
                    float[] one = rows.getArray(r).toFloatArray();
                    if (one.length != dim) {
                        throw new IllegalArgumentException("tensor rows must have the head dimension " + dim
                                + "; row " + r + " length=" + one.length);
                    }
                    System.arraycopy(one, 0, out, r * dim, dim);
                }
                yield out;
            }
            case BINARY_FLOAT32, BINARY_FLOAT16 -> fromBytes(row.getBinary(ordinal));
        };
    }

    /** The floats of a {@code Row} value (array<float> as a Scala sequence, or binary). */
    float[] floats(org.apache.spark.sql.Row row, int ordinal) {
        return switch (this) {
            case FLOATS -> {
                scala.collection.Seq<Object> seq = row.getSeq(ordinal);
                float[] out = new float[seq.length()];
                scala.collection.Iterator<Object> it = seq.iterator();
                for (int i = 0; it.hasNext(); i++) {
                    Object v = it.next();
                    out[i] = v == null ? Float.NaN : (Float) v;
                }
                yield out;
            }
            case BINARY_FLOAT32, BINARY_FLOAT16 -> fromBytes((byte[]) row.get(ordinal));
            case ROWS -> throw new IllegalStateException("a single vector cannot be array<array<float>>");
        };
    }

    private float[] fromBytes(byte[] bytes) {
        ByteBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (this == BINARY_FLOAT16) {
            if (bytes.length % 2 != 0) {
                throw new IllegalArgumentException("float16 binary must hold an even number of bytes; bytes="
                        + bytes.length);
            }
            float[] out = new float[bytes.length / 2];
            for (int i = 0; i < out.length; i++) {
                out[i] = Half.toFloat(buffer.getShort());
            }
            return out;
        }
        if (bytes.length % 4 != 0) {
            throw new IllegalArgumentException("float32 binary must hold a multiple of 4 bytes; bytes=" + bytes.length);
        }
        float[] out = new float[bytes.length / 4];
        buffer.asFloatBuffer().get(out);
        return out;
    }
}
