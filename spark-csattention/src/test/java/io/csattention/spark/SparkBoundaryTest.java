package io.csattention.spark;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/** io.csattention.spark is the only package that touches Spark or Hadoop; the formats stay plain Java streams. */
class SparkBoundaryTest {

    @Test
    void onlyTheSparkPackageImportsSparkOrHadoop() {
        JavaClasses classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_JARS)
                .importPackages("io.csattention");
        noClasses().that().resideOutsideOfPackage("io.csattention.spark..")
                .should().dependOnClassesThat().resideInAnyPackage("org.apache.spark..", "org.apache.hadoop..",
                        "scala..")
                .check(classes);
    }
}
