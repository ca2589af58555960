package io.csattention.architecture;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

/**
 * The one architecture test. Data flows one way and the packages form no cycle; the algorithm stays plain Java (only
 * io.csattention.spark imports Spark, Hadoop or Scala); JCuda stays behind the decode backend interface (only
 * io.csattention.device.cuda uses it, and nothing outside that package imports it: {@code Backends} finds it with a
 * ServiceLoader).
 */
@AnalyzeClasses(packages = "io.csattention", importOptions = {ImportOption.DoNotIncludeTests.class,
        ImportOption.DoNotIncludeJars.class})
class ArchitectureTest {

    @ArchTest
    static final ArchRule packagesAreFreeOfCycles = slices().matching("io.csattention.(*)..").should()
            .beFreeOfCycles();

    @ArchTest
    static final ArchRule onlyTheSparkPackageUsesSparkOrHadoop = noClasses().that()
            .resideOutsideOfPackage("io.csattention.spark..")
            .should().dependOnClassesThat().resideInAnyPackage("org.apache.spark..", "org.apache.hadoop..",
                    "scala..");

    @ArchTest
    static final ArchRule onlyTheCudaPackageUsesJcuda = noClasses().that()
            .resideOutsideOfPackage("io.csattention.device.cuda..")
            .should().dependOnClassesThat().resideInAPackage("jcuda..");

    @ArchTest
    static final ArchRule nothingAboveTheCudaBackendImportsIt = noClasses().that()
            .resideOutsideOfPackage("io.csattention.device.cuda..")
            .should().dependOnClassesThat().resideInAPackage("io.csattention.device.cuda..");
}
