package io.csattention.spark;

import io.csattention.format.Half;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.util.ArrayData;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class TensorColumnTest {

    private static final float[] VALUES = {1f, -2.5f, 0.125f, 3f, 65504f, -0f};

    @Test
    void everyEncodingGivesTheSameFloats() {
        StructType schema = new StructType()
                .add("a", DataTypes.createArrayType(DataTypes.FloatType))
                .add("b", DataTypes.createArrayType(DataTypes.createArrayType(DataTypes.FloatType)))
                .add("c", DataTypes.BinaryType);
        ByteBuffer f32 = ByteBuffer.allocate(4 * VALUES.length).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer f16 = ByteBuffer.allocate(2 * VALUES.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : VALUES) {
            f32.putFloat(v);
            f16.putShort(Half.fromFloat(v));
        }
        ArrayData rows = ArrayData.toArrayData(new Object[] {
                ArrayData.toArrayData(new float[] {1f, -2.5f, 0.125f}),
                ArrayData.toArrayData(new float[] {3f, 65504f, -0f})});
        GenericInternalRow row = new GenericInternalRow(new Object[] {ArrayData.toArrayData(VALUES), rows,
                f32.array()});
        assertEquals(TensorColumn.FLOATS, TensorColumn.of(schema, "t", "a", false, true));
        assertEquals(TensorColumn.ROWS, TensorColumn.of(schema, "t", "b", false, true));
        assertEquals(TensorColumn.BINARY_FLOAT32, TensorColumn.of(schema, "t", "c", false, true));
        assertArrayEquals(VALUES, TensorColumn.FLOATS.floats(row, 0, 3));
        assertArrayEquals(VALUES, TensorColumn.ROWS.floats(row, 1, 3));
        assertArrayEquals(VALUES, TensorColumn.BINARY_FLOAT32.floats(row, 2, 3));
        GenericInternalRow half = new GenericInternalRow(new Object[] {null, null, f16.array()});
        assertArrayEquals(VALUES, TensorColumn.of(schema, "t", "c", true, true).floats(half, 2, 3));
    }

    @Test
    void rowsOfTheWrongWidthAndOddBinaryAreRejected() {
        GenericInternalRow row = new GenericInternalRow(new Object[] {ArrayData.toArrayData(new Object[] {
                ArrayData.toArrayData(new float[] {1f, 2f})}), new byte[] {1, 2, 3}});
        assertEquals("tensor rows must have the head dimension 3; row 0 length=2", assertThrows(
                IllegalArgumentException.class, () -> TensorColumn.ROWS.floats(row, 0, 3)).getMessage());
        assertEquals("float32 binary must hold a multiple of 4 bytes; bytes=3", assertThrows(
                IllegalArgumentException.class, () -> TensorColumn.BINARY_FLOAT32.floats(row, 1, 3)).getMessage());
    }
}
